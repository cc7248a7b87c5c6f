"""The ARC self-edit: a JSON tool configuration for test-time training, and its parser.

The policy writes free text; ``parse_self_edit`` turns it into a ``ToolConfig`` or a
short, stable reason why not (these reasons are counted in reports, so never change
their spelling). The parser never raises: a malformed self-edit earns reward 0, it
must not stop the workflow.

Bounds: 0 < learning_rate <= 1e-2 (LoRA rates beyond that diverge even on the tiny
model) and num_train_epochs an integer in 1..20. An integral float such as 3.0 is
accepted as an epoch count; booleans must be JSON true/false, not strings.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sealflow.fewshot.augment import AugmentFlags
from sealflow.records import UNDECODABLE, undecodable

Strategy = Literal["all_tokens", "output_tokens"]

LR_MAX = 1e-2
EPOCHS_MIN, EPOCHS_MAX = 1, 20
FLAG_KEYS = (
    "use_basic_augmentations",
    "use_size_augmentations",
    "use_chain_augmentations",
    "use_repeat_augmentations",
)
TRAINING_KEYS = ("strategy", "learning_rate", "num_train_epochs")
# The paper's spellings first; the short forms are what ToolConfig stores.
_STRATEGIES = {
    "train_using_all_tokens": "all_tokens",
    "train_using_output_tokens": "output_tokens",
    "all_tokens": "all_tokens",
    "output_tokens": "output_tokens",
}

NO_JSON = "no_json"
INVALID_JSON = "invalid_json"
OVER_BUDGET = "over_budget"
DUPLICATE = "duplicate"  # assigned by the caller, which sees all of a task's self-edits


@dataclass(frozen=True)
class ToolConfig:
    use_basic_augmentations: bool
    use_size_augmentations: bool
    use_chain_augmentations: bool
    use_repeat_augmentations: bool
    strategy: Strategy
    learning_rate: float
    num_train_epochs: int

    @property
    def flags(self) -> AugmentFlags:
        return AugmentFlags(
            basic=self.use_basic_augmentations,
            size=self.use_size_augmentations,
            chain=self.use_chain_augmentations,
            repeat=self.use_repeat_augmentations,
        )

    @property
    def train_on_prompt(self) -> bool:
        """Whether the loss covers the whole sequence ("all tokens") or only the answer."""
        return self.strategy == "all_tokens"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "ToolConfig":
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ParseResult:
    config: ToolConfig | None
    reason: str | None  # None exactly when config is set

    @property
    def ok(self) -> bool:
        return self.config is not None


def _first_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The first JSON object in ``text`` (prose and ``` fences around it are ignored)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    if start < 0:
        return None, NO_JSON
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value, None
        start = text.find("{", start + 1)
    return None, INVALID_JSON


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate(obj: dict[str, Any]) -> ParseResult:
    def fail(reason: str) -> ParseResult:
        return ParseResult(None, reason)

    if "data_generation" in obj or "training" in obj:  # the paper's nested layout
        for section in ("data_generation", "training"):
            if section not in obj:
                return fail(f"missing_key:{section}")
            if not isinstance(obj[section], dict):
                return fail(f"wrong_type:{section}")
        flags_src, train_src = obj["data_generation"], obj["training"]
    else:
        flags_src = train_src = obj

    flags = []
    for key in FLAG_KEYS:
        if key not in flags_src:
            return fail(f"missing_key:{key}")
        if not isinstance(flags_src[key], bool):
            return fail(f"wrong_type:{key}")
        flags.append(flags_src[key])

    for key in TRAINING_KEYS:
        if key not in train_src:
            return fail(f"missing_key:{key}")
    strategy = train_src["strategy"]
    if not isinstance(strategy, str):
        return fail("wrong_type:strategy")
    if strategy.strip().lower() not in _STRATEGIES:
        return fail("out_of_range:strategy")
    lr = train_src["learning_rate"]
    if not _is_number(lr):
        return fail("wrong_type:learning_rate")
    try:
        lr = float(lr)
    except OverflowError:  # an integer too large for a float
        return fail("out_of_range:learning_rate")
    if not (math.isfinite(lr) and 0 < lr <= LR_MAX):
        return fail("out_of_range:learning_rate")
    epochs = train_src["num_train_epochs"]
    if not _is_number(epochs) or (isinstance(epochs, float) and not (math.isfinite(epochs) and epochs.is_integer())):
        return fail("wrong_type:num_train_epochs")
    if not EPOCHS_MIN <= epochs <= EPOCHS_MAX:
        return fail("out_of_range:num_train_epochs")

    config = ToolConfig(*flags, _STRATEGIES[strategy.strip().lower()], lr, int(epochs))  # type: ignore[arg-type]
    return ParseResult(config, None)


def parse_self_edit(
    text: str, n_examples: int | None = None, batch_size: int = 1, max_steps: int | None = None
) -> ParseResult:
    """Parse a self-edit; with ``n_examples`` and ``max_steps`` also enforce the step budget."""
    try:
        if not isinstance(text, str):
            return ParseResult(None, NO_JSON)
        if undecodable(text):
            return ParseResult(None, UNDECODABLE)
        obj, reason = _first_object(text)
        if obj is None:
            return ParseResult(None, reason)
        result = _validate(obj)
        if result.config is not None and n_examples is not None and max_steps is not None:
            over = check_budget(result.config, n_examples, batch_size, max_steps)
            if over is not None:
                return ParseResult(None, over)
        return result
    except Exception:  # noqa: BLE001 - the contract is "never raises"; treat as unparseable
        return ParseResult(None, INVALID_JSON)


def training_steps(config: ToolConfig, n_examples: int, batch_size: int) -> int:
    """Optimizer steps of test-time training: epochs x batches per epoch."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return config.num_train_epochs * math.ceil(max(n_examples, 0) / batch_size)


def check_budget(config: ToolConfig, n_examples: int, batch_size: int, max_steps: int) -> str | None:
    """``over_budget`` when the configuration would train for more than ``max_steps`` steps."""
    return OVER_BUDGET if training_steps(config, n_examples, batch_size) > max_steps else None


def config_key(config: ToolConfig) -> str:
    """Equal keys mean the same configuration (learning rates equal to 6 significant digits)."""
    row = config.to_dict()
    row["learning_rate"] = float(f"{config.learning_rate:.6g}")
    return json.dumps(row, sort_keys=True)


def nested_layout(values: dict[str, Any]) -> dict[str, Any]:
    """The paper's nested layout of a configuration's values (keyed by FLAG_KEYS and TRAINING_KEYS)."""
    return {"data_generation": {key: values[key] for key in FLAG_KEYS},
            "training": {key: values[key] for key in TRAINING_KEYS}}


def to_json(config: ToolConfig) -> str:
    """The configuration in the paper's nested layout: what the policy learns to write."""
    return json.dumps(nested_layout({**config.to_dict(), "strategy": f"train_using_{config.strategy}"}))

