from django.contrib import admin
from django.urls import include, path

from annotation import views as annotation_views
from modelserve import views as modelserve_views

urlpatterns = [
    path("", annotation_views.home, name="home"),
    path("talk/", modelserve_views.talk, name="talk"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("annotation.urls")),
    path("", include("attacks.urls")),
    path("", include("evaluation.urls")),
    path("api/v1/", include("annotation.api_urls")),
    path("api/v1/", include("modelserve.api_urls")),
    path("api/v1/", include("evaluation.api_urls")),
    path("admin/", admin.site.urls),
]
