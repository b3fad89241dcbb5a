from django.urls import path

from annotation import api

urlpatterns = [
    path("work/<int:dataset_id>/<str:kind>/next", api.next_task, name="api_next_task"),
    path("tasks/<uuid:task_id>/answer", api.answer, name="api_answer"),
    path("tasks/<uuid:task_id>/skip", api.skip, name="api_skip"),
    path("progress", api.progress, name="api_progress"),
    path("datasets/<int:dataset_id>/agreement", api.agreement, name="api_agreement"),
]
