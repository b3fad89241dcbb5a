from django.urls import path

from attacks import views

app_name = "attacks"

urlpatterns = [
    path("attack/", views.attack_home, name="attack_home"),
    path("attack/<uuid:campaign_id>/", views.attack_page, name="attack_page"),
    path("attack/session/<uuid:session_id>/score", views.score, name="score"),
    path("attack/session/<uuid:session_id>/suggest", views.suggest, name="suggest"),
    path("attack/session/<uuid:session_id>/apply", views.apply, name="apply"),
    path("attack/session/<uuid:session_id>/submit", views.submit, name="submit"),
    path("attack/session/<uuid:session_id>/leave", views.leave, name="leave"),
]
