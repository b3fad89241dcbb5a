from django.urls import path, re_path

from evaluation import api, export_api

urlpatterns = [
    path("evaluation/report", api.report_json, name="evaluation_report"),
    re_path(r"^datasets/(?P<dataset_id>[0-9]+)/export\.(?P<fmt>jsonl|csv)$", export_api.export_dataset,
            name="dataset_export"),
]
