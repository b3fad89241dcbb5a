from django.urls import path, re_path

from evaluation import views

app_name = "evaluation"

urlpatterns = [
    path("evaluation/", views.report_page, name="report"),
    path("evaluation/thresholds/", views.threshold_page, name="thresholds"),
    re_path(r"^evaluation/(?P<name>report)\.(?P<fmt>json)$", views.report_data, name="data"),
    re_path(r"^evaluation/(?P<name>table2|figure2|figure3|quality_checks)\.(?P<fmt>csv|json)$", views.report_data, name="table"),
    re_path(r"^evaluation/(?P<name>figure2|figure3)\.(?P<fmt>png|svg)$", views.report_data, name="figure"),
]
