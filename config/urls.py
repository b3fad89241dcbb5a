from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation import views as annotation_views
from modelserve import views as modelserve_views

urlpatterns = [
    path("", annotation_views.home, name="home"),
    path("talk/", modelserve_views.talk, name="talk"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("annotation.urls")),
    path("", include("attacks.urls")),
    path("", include("evaluation.urls")),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/v1/docs", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
    path("api/v1/", include("annotation.api_urls")),
    path("api/v1/", include("modelserve.api_urls")),
    path("api/v1/", include("evaluation.api_urls")),
    path("api/v1/", include("eventlog.api_urls")),
    path("admin/", admin.site.urls),
]

# Under /api/ a route that matches nothing, or an error no view handled, is answered in JSON
# ({"detail": ...}) like every other API error; other paths keep Django's pages.
handler404 = "config.api.page_not_found"
handler500 = "config.api.server_error"
