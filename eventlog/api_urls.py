from django.urls import path

from eventlog import api

urlpatterns = [path("events", api.events, name="event_feed")]
