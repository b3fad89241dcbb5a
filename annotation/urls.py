from django.urls import path

from annotation import views

app_name = "annotation"

urlpatterns = [
    path("work/", views.work_home, name="work_home"),
    path("work/<int:dataset_id>/<str:kind>/", views.task_page, name="task_page"),
    path("work/task/<uuid:task_id>/answer", views.answer, name="answer"),
    path("work/task/<uuid:task_id>/skip", views.skip, name="skip"),
    path("oversee/", views.oversee_home, name="oversee_home"),
    path("oversee/<int:dataset_id>/", views.oversee_dataset, name="oversee_dataset"),
]
