from django.urls import path

from evaluation import api

urlpatterns = [path("evaluation/report", api.report_json, name="evaluation_report")]
