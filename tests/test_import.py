import subprocess
import sys

# Run from an empty directory: in the repository root the source folder tokensmith/
# would shadow the installed package (whose sub-packages live in core/, spec/, ...).


def test_import_tokensmith_does_not_import_torch_or_transformers(tmp_path):
    code = ("import sys, tokensmith, tokensmith.registry, tokensmith.spec, tokensmith.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert out.stdout.strip() == "[]"


def test_building_a_registry_does_not_import_torch(tmp_path):
    code = ("import sys, tokensmith; r = tokensmith.Registry.from_environment(); "
            "print(len(r.components()) > 0, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert out.stdout.split()[-1] == "False"


def test_no_top_level_core_or_spec_module_is_installed():
    import importlib.util

    for name in ("core", "spec", "registry", "adapters"):
        spec = importlib.util.find_spec(name)
        assert spec is None or "tokensmith" not in (spec.origin or ""), name
