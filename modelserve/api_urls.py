from django.urls import path

from modelserve import api

urlpatterns = [
    path("models/<str:version>/score", api.score, name="model_score"),
    path("models/<str:version>/saliency", api.saliency, name="model_saliency"),
    path("models/<str:version>/substitutions", api.substitutions, name="model_substitutions"),
    path("models/<str:version>/insertions", api.insertions, name="model_insertions"),
    path("models/<str:version>/edit-map", api.edit_map, name="model_edit_map"),
    path("generate/filtered", api.filtered_generation, name="filtered_generation"),
    path("training-runs", api.start_training, name="training_start"),
    path("training-runs/<str:run_id>", api.training_run, name="training_run"),
    path("training-runs/<str:run_id>/cancel", api.cancel_training, name="training_cancel"),
]
