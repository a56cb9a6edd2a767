"""The declarative catalogs under ``config/``: plans, provider types and models, turn-taking defaults.

Loaded and validated once at start; a bad file fails fast with a ConfigError naming the file and field.
The control plane (plans, provider registry, model search) and the engine read the same objects.
"""

from __future__ import annotations

import functools
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.turn_settings import TurnSettings
from providers.urls import is_path_segment
from voicex.platform.errors import ConfigError, hinted
from voicex.store.providers import ModelDoc

BCP47 = hinted(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", "use a BCP 47 language tag, like en-US")

Category = Literal["llm", "tts", "stt"]
CATEGORIES: tuple[Category, ...] = ("llm", "tts", "stt")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Pricing(_Strict):
    monthly: float = Field(ge=0)
    annual: float = Field(ge=0)
    maxDiscountPercent: float = Field(ge=0, le=100)


class Limits(_Strict):
    maxAgents: int = Field(ge=0)
    maxConcurrentCalls: int = Field(ge=0)
    maxCallDurationSec: int = Field(ge=1)
    maxMonthlyMinutes: int = Field(ge=0)


class Features(_Strict):
    customProviders: bool
    maxCustomProviders: int = Field(ge=0)


class Plan(_Strict):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    description: str = ""
    tier: int = Field(ge=0)
    pricing: Pricing
    limits: Limits
    features: Features
    public: bool
    custom: bool
    extraModels: tuple[str, ...] = ()


class PlansFile(_Strict):
    defaultPlan: str
    plans: tuple[Plan, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> PlansFile:
        slugs = [plan.slug for plan in self.plans]
        if len(set(slugs)) != len(slugs):
            raise ValueError("plan slugs must be unique")
        if self.defaultPlan not in slugs:
            raise ValueError(f"defaultPlan {self.defaultPlan!r} is not a plan slug")
        return self


class CredentialField(_Strict):
    key: str
    label: str
    env: str | None = None


class SettingField(_Strict):
    key: str
    label: str
    default: str | int | float | bool | None = None
    categories: tuple[Category, ...] | None = None  # None: every category of the provider type
    choices: tuple[str, ...] | None = None  # what agents on a global provider may pick (ttsModel)

    def applies_to(self, category: str) -> bool:
        return self.categories is None or category in self.categories


class ModelEntry(_Strict):
    """A model of one category; for TTS it is a voice, and ``language`` (BCP 47) says what it speaks."""

    id: str = Field(min_length=1)
    label: str
    plan: str
    language: str | None = Field(None, pattern=BCP47)


class ProviderType(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    categories: tuple[Category, ...] = Field(min_length=1)
    global_: bool = Field(alias="global")
    enabledBy: str | None = None  # a boolean setting that must be true for this type to exist
    credentials: tuple[CredentialField, ...] = ()
    settings: tuple[SettingField, ...] = ()
    models: dict[Category, tuple[ModelEntry, ...]]

    @model_validator(mode="after")
    def _check(self) -> ProviderType:
        for category in self.models:
            if category not in self.categories:
                raise ValueError(f"models lists category {category!r} that is not in categories")
        for category in self.categories:
            if not self.models.get(category):
                raise ValueError(f"category {category!r} has no models")
        for voice in self.models.get("tts", ()):
            if voice.language is None:
                raise ValueError(f"tts voice {voice.id!r} needs a language")
            if not is_path_segment(voice.id):
                raise ValueError(f"tts voice {voice.id!r} is not a safe URL path segment")
        for setting in self.settings:
            if setting.choices is not None and setting.default not in setting.choices:
                raise ValueError(f"setting {setting.key!r}: default {setting.default!r} is not one of its choices")
        return self

    def settings_for(self, category: str) -> tuple[SettingField, ...]:
        """The settings a provider of ``category`` takes (``ttsModel`` only on a TTS one, say)."""
        return tuple(setting for setting in self.settings if setting.applies_to(category))

    def setting_defaults(self, category: str) -> dict[str, Any]:
        return {setting.key: setting.default for setting in self.settings_for(category)}


class ProvidersFile(_Strict):
    providers: tuple[ProviderType, ...] = Field(min_length=1)


class Knob(_Strict):
    default: int | float | str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    doc: str

    @model_validator(mode="after")
    def _check(self) -> Knob:
        if self.choices is not None:
            if self.default not in self.choices:
                raise ValueError(f"default {self.default!r} is not one of {list(self.choices)}")
        elif self.min is None or self.max is None:
            raise ValueError("a numeric knob needs min and max (or give choices)")
        elif isinstance(self.default, str) or not self.min <= self.default <= self.max:
            raise ValueError(f"default {self.default!r} is outside [{self.min}, {self.max}]")
        return self


class SensitivityRule(_Strict):
    minSpeechMs: int = Field(ge=0, le=5000)
    minWords: int = Field(ge=0, le=10)
    wordWaitMs: int = Field(0, ge=0, le=2000)


class TurnTakingFile(_Strict):
    knobs: dict[str, Knob]
    sensitivity: dict[Literal["low", "medium", "high"], SensitivityRule]
    backchannels: tuple[str, ...]

    @model_validator(mode="after")
    def _check(self) -> TurnTakingFile:
        missing = {"low", "medium", "high"} - set(self.sensitivity)
        if missing:
            raise ValueError(f"sensitivity is missing {sorted(missing)}")
        return self

    def defaults(self) -> dict[str, Any]:
        return {name: knob.default for name, knob in self.knobs.items()}


class Catalog:
    """All of ``config/``, validated and cross-checked."""

    def __init__(self, plans: PlansFile, providers: ProvidersFile, turn_taking: TurnTakingFile) -> None:
        self.plans_file = plans
        self.providers_file = providers
        self.turn_taking = turn_taking
        self._cross_check()

    @cached_property
    def plans(self) -> dict[str, Plan]:
        return {plan.slug: plan for plan in self.plans_file.plans}

    @cached_property
    def provider_types(self) -> dict[str, ProviderType]:
        return {provider.key: provider for provider in self.providers_file.providers}

    @property
    def default_plan(self) -> Plan:
        return self.plans[self.plans_file.defaultPlan]

    def plan_for(self, slug: str | None) -> Plan:
        """The plan named ``slug``; an unknown slug (a plan removed from the YAML) falls back to the default."""
        return self.plans.get(slug or "") or self.default_plan

    def plan_models(self, plan: Plan) -> dict[Category, list[str]]:
        """``{"llm": ["openai/gpt-4o-mini", ...], ...}``: every model the plan may use."""
        allowed: dict[Category, list[str]] = {category: [] for category in CATEGORIES}
        extra = set(plan.extraModels)
        for provider in self.providers_file.providers:
            for category, models in provider.models.items():
                for model in models:
                    ref = f"{provider.key}/{model.id}"
                    if self.plans[model.plan].tier <= plan.tier or ref in extra:
                        allowed[category].append(ref)
        return allowed

    def _cross_check(self) -> None:
        try:  # every knob must be one the engine knows, and every engine setting must have its knob
            TurnSettings.from_table(self.turn_taking.model_dump())
        except ValueError as exc:
            raise ConfigError(f"config/turn_taking.yaml: {exc}") from None
        known_refs = set()
        for provider in self.providers_file.providers:
            for category, models in provider.models.items():
                for index, model in enumerate(models):
                    known_refs.add(f"{provider.key}/{model.id}")
                    if model.plan not in self.plans:
                        raise ConfigError(
                            f"config/providers.yaml: providers[{provider.key}].models.{category}[{index}].plan:"
                            f" {model.plan!r} is not a plan in config/plans.yaml"
                        )
        for plan in self.plans_file.plans:
            for ref in plan.extraModels:
                if ref not in known_refs:
                    raise ConfigError(
                        f"config/plans.yaml: plans[{plan.slug}].extraModels: {ref!r} is not a model in"
                        " config/providers.yaml"
                    )


def catalog_models(provider_type: ProviderType, category: Category) -> list[ModelDoc]:
    """A provider document's model list as the catalog has it (voices with their language)."""
    models: list[ModelDoc] = []
    for m in provider_type.models[category]:
        model: ModelDoc = {"modelId": m.id, "label": m.label}
        if m.language:
            model["language"] = m.language
        models.append(model)
    return models


def _load_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def _parse(model: type[BaseModel], path: Path) -> Any:
    data = _load_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None


_FILES = ("plans.yaml", "providers.yaml", "turn_taking.yaml")


def load_catalog(config_dir: Path, enabled: frozenset[str] = frozenset()) -> Catalog:
    """Load and validate ``plans.yaml``, ``providers.yaml`` and ``turn_taking.yaml`` from ``config_dir``.

    Provider types with ``enabledBy`` exist only when that setting's name is in ``enabled``. A catalog is immutable,
    so a process that starts several runtimes (tests, the demo) parses unchanged files once.
    """
    stamps = tuple((config_dir / name).stat().st_mtime_ns if (config_dir / name).exists() else 0 for name in _FILES)
    return _load(config_dir.resolve(), enabled, stamps)


@functools.lru_cache(maxsize=8)
def _load(config_dir: Path, enabled: frozenset[str], stamps: tuple[int, ...]) -> Catalog:
    providers: ProvidersFile = _parse(ProvidersFile, config_dir / "providers.yaml")
    kept = tuple(p for p in providers.providers if p.enabledBy is None or p.enabledBy in enabled)
    return Catalog(
        plans=_parse(PlansFile, config_dir / "plans.yaml"),
        providers=providers.model_copy(update={"providers": kept}),
        turn_taking=_parse(TurnTakingFile, config_dir / "turn_taking.yaml"),
    )
