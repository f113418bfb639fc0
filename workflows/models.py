"""Workflow definitions (AIFlowy/Tinyflow node-edge JSON) and their runs."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Workflow(models.Model):
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    definition = models.JSONField(_("definition"), default=dict)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("workflow")
        verbose_name_plural = _("workflows")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title
