"""Typed errors. Each says what went wrong, which component and plugin, and what to do."""

from __future__ import annotations


class TokensmithError(Exception):
    """Base class of every tokensmith error.

    ``component`` names the component (``"decoder 'greedy'"``), ``plugin`` the
    distribution that provides it, ``hint`` what the user can do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        component: str | None = None,
        plugin: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.component = component
        self.plugin = plugin
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.component:
            where = f"[{self.component}"
            where += f" from {self.plugin}]" if self.plugin else "]"
            where += " "
        text = where + self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(TokensmithError, ValueError):
    """A configuration value (pipeline spec, component parameter, TOML) is invalid."""


class ValidationError(ConfigError):
    """Several problems found while validating a pipeline; all are listed at once."""

    def __init__(self, problems: list[TokensmithError]) -> None:
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) in the pipeline:"]
        lines += [f"  - {str(p)}".replace("\n", "\n    ") for p in self.problems]
        super().__init__("\n".join(lines))


class UnknownComponentError(ConfigError, KeyError):
    """No installed plugin provides a component of that kind and name."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self._render()


class ComponentCollisionError(TokensmithError):
    """Two plugins registered the same kind and name."""


class PluginLoadError(TokensmithError, ImportError):
    """A plugin's entry point could not be imported or its hooks failed."""


class UnsupportedRuntimeError(TokensmithError, ValueError):
    """Unknown device/dtype string, or a component that does not support the configured one."""


class IncompatibleComponentsError(ConfigError):
    """Two components of one pipeline cannot work together."""


class InputError(TokensmithError, TypeError):
    """A component was called with input of the wrong type or shape."""


class ContextLengthError(TokensmithError, ValueError):
    """A token sequence is longer than the model's context window."""


class ByteViewError(TokensmithError, ValueError):
    """A tokenizer's byte view disagrees with its decode, or is missing where required."""


class UnrepresentableTextError(TokensmithError, ValueError):
    """Text contains bytes the tokenizer's vocabulary cannot represent."""

    def __init__(self, message: str, *, missing: bytes = b"", **kw) -> None:
        self.missing = missing
        super().__init__(message, **kw)


class ModelLoadError(TokensmithError, OSError):
    """A model source could not be found or loaded."""


class ArtifactError(TokensmithError, OSError):
    """A safetensors artifact is missing, corrupt, or has unexpected metadata."""


class SurgeryError(TokensmithError, ValueError):
    """Model surgery (norm or embedding replacement) found nothing it can change."""


class StaleStateError(TokensmithError, RuntimeError):
    """A language-model state whose KV cache was already extended was extended again."""
