"""Clients of an agency instance and, per tier, how agents are tuned for them (DESIGN §4)."""

from __future__ import annotations

from django.db import models


class Vertical(models.TextChoices):
    BEAUTY = "beauty", "Beauty"
    FASHION = "fashion", "Fashion"
    FOOD = "food", "Food & beverage"
    TECHNOLOGY = "technology", "Technology"
    FINANCE = "finance", "Finance"
    HEALTHCARE = "healthcare", "Healthcare"
    RETAIL = "retail", "Retail & e-commerce"
    OTHER = "other", "Other"


class Client(models.Model):
    """A brand the agency works for. Account managers and client contacts are given access
    to a client with guardian object permissions on this row."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    vertical = models.CharField(max_length=20, choices=Vertical.choices, default=Vertical.OTHER)
    region = models.CharField(max_length=20, blank=True, help_text="GCC, MENA, EU, US or APAC.")
    language = models.CharField(max_length=10, blank=True, help_text="Output language for this client (ISO 639-1).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
