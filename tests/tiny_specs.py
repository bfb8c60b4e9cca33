"""The tiny experiment spec the sweep tests share: synthetic data (no optional import in the workers) and a
1-hidden-layer MLP that trains in a fraction of a second; each test adds its own grid or series."""
import textwrap

BASE = textwrap.dedent("""
    [base]
    dataset = "synthetic"
    arch = "mlp"
    depth = 2
    width = 8
    epochs = 2
    batch_size = 128
    momentum = 0.9
""")


def tiny_spec(name: str, rest: str, *, title: str | None = None) -> str:
    """A spec named ``name`` over :data:`BASE`; ``rest`` (TOML, dedented) holds lr, grid, series, profiles."""
    head = f'[experiment]\nname = "{name}"\n' + (f'title = "{title}"\n' if title else "")
    return head + BASE + textwrap.dedent(rest)
