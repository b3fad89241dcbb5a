from django.db import models


class Item(models.Model):
    """Inline read model: one row per item stream."""

    stream_id = models.CharField(max_length=128, primary_key=True)
    name = models.CharField(max_length=200)
    quantity = models.IntegerField()
    events = models.IntegerField()


class TickTotal(models.Model):
    """Asynchronous read model: ticks per stream, applied one event at a time."""

    stream_id = models.CharField(max_length=128, primary_key=True)
    count = models.IntegerField(default=0)
    total = models.BigIntegerField(default=0)
    positions_hash = models.BigIntegerField(default=0)


class StreamItem(models.Model):
    """Stream read model: one row per item stream, with every position applied to it, in order."""

    stream_id = models.CharField(max_length=128, primary_key=True)
    name = models.CharField(max_length=200)
    version = models.IntegerField()
    positions = models.TextField()
