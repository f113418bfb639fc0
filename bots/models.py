"""LLM providers and the bots that use them."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from aiflowy.crypto import EncryptedTextField


class LlmProvider(models.Model):
    """An OpenAI-compatible endpoint (or the offline echo provider) and its secret key."""

    class Kind(models.TextChoices):
        OPENAI = "openai", _("OpenAI-compatible endpoint")
        ECHO = "echo", _("Echo (offline demo, no network)")

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.OPENAI)
    base_url = models.URLField(
        _("base URL"), blank=True, help_text=_("For example https://api.openai.com/v1")
    )
    # Needed in plain form to call the provider, so it cannot be hashed: encrypted at rest
    # (aiflowy/crypto.py); the admin never renders it back and it is kept out of logs and reprs.
    api_key = EncryptedTextField(_("API key"), blank=True)
    default_model = models.CharField(_("default model"), max_length=200, blank=True)
    timeout_seconds = models.FloatField(
        _("timeout (seconds)"), default=60.0, validators=[MinValueValidator(0.1)]
    )
    # Prices are the operator's own figures (any currency), reported as `price` in FastGPT's
    # `detail` records; nothing is charged.
    input_price_per_1k = models.DecimalField(
        _("input price per 1K tokens"),
        max_digits=12,
        decimal_places=6,
        default=0,
        validators=[MinValueValidator(0)],
    )
    output_price_per_1k = models.DecimalField(
        _("output price per 1K tokens"),
        max_digits=12,
        decimal_places=6,
        default=0,
        validators=[MinValueValidator(0)],
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("LLM provider")
        verbose_name_plural = _("LLM providers")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<LlmProvider {self.pk} {self.name!r} {self.kind}>"


class Bot(models.Model):
    """A configured assistant: a provider + model, a system prompt and generation defaults."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    provider = models.ForeignKey(
        LlmProvider, on_delete=models.PROTECT, related_name="bots", verbose_name=_("provider")
    )
    model = models.CharField(
        _("model"), max_length=200, blank=True, help_text=_("Empty: the provider's default model")
    )
    system_prompt = models.TextField(
        _("system prompt"),
        blank=True,
        help_text=_("{{name}} placeholders are filled from the caller's variables."),
    )
    temperature = models.FloatField(
        _("temperature"), default=0.7, validators=[MinValueValidator(0), MaxValueValidator(2)]
    )
    top_p = models.FloatField(
        _("top p"), default=0.7, validators=[MinValueValidator(0), MaxValueValidator(1)]
    )
    max_tokens = models.PositiveIntegerField(_("max reply tokens"), default=2048)
    history_window = models.PositiveIntegerField(
        _("history window"),
        default=10,
        help_text=_("How many past messages of a server-side conversation are sent to the model."),
    )
    welcome_message = models.TextField(_("welcome message"), blank=True)
    allow_request_overrides = models.BooleanField(
        _("callers may override generation settings"),
        default=True,
        help_text=_(
            "On: temperature, top_p, max_tokens and stop from a request win, and seed, "
            "penalties, logit_bias, logprobs, n and reasoning_effort go to the provider. Off: "
            "the bot's settings are used and those other fields are refused."
        ),
    )
    allow_request_tools = models.BooleanField(
        _("callers may send tools"),
        default=True,
        help_text=_(
            "Whether OpenAI-compatible requests may carry tools, tool_choice and functions "
            "(tool calling). Off: such requests are refused."
        ),
    )
    allow_request_media = models.BooleanField(
        _("callers may send images and other media"),
        default=True,
        help_text=_(
            "Whether messages may carry image, audio and file parts, and requests may ask for "
            "audio output. Off: such requests are refused."
        ),
    )
    input_price_per_1k = models.DecimalField(
        _("input price per 1K tokens"),
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Empty: the provider's price."),
    )
    output_price_per_1k = models.DecimalField(
        _("output price per 1K tokens"),
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Empty: the provider's price."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("bot")
        verbose_name_plural = _("bots")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
