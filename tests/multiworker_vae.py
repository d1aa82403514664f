"""One process of tests/test_distributed.py: trains the Mult-VAE of the test shop (selection:
training users, early stopping on validation NDCG@100) as models.components.vae does, and
prints the best validation NDCG@100 as JSON. With TF_CONFIG, one worker of several.

python -m tests.multiworker_vae EPOCHS [SEED]   (SEED: vae.seed, the config's by default)
"""

from __future__ import annotations

import json
import sys

from models.distributed import placement


def main(epochs: int, seed: int | None = None) -> None:
    place = placement()  # before TensorFlow's first op
    from models.components.vae import validation_ndcg
    from models.config import TrainConfig
    from models.data import clean
    from models.pipeline import prepare
    from models.synthetic import ShopConfig, generate
    from models.vae import train_vae
    from tests.conftest import FAST_CONFIG, SHOP

    config = TrainConfig.from_dict(FAST_CONFIG)
    if seed is not None:
        config.vae.seed = seed
    data, _, _ = prepare(clean(generate(ShopConfig(**SHOP)), config.cleaning), config, frozenset(), print)
    model, history, best_epoch = train_vae(
        data.train / data.max_weight,
        config.vae,
        epochs=epochs,
        patience=epochs,
        validate=lambda m: validation_ndcg(m, data.val_foldin, data.val_target),
        log=print,
    )
    best = history[best_epoch - 1]["val_ndcg@100"]
    # The kept weights are the best epoch's on every worker: score them again.
    again = validation_ndcg(model, data.val_foldin, data.val_target)
    result = {"workers": place.workers, "chief": place.is_chief, "best_epoch": best_epoch}
    result |= {"val_ndcg@100": best, "rescored": again, "first_loss": history[0]["loss"]}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), *(int(a) for a in sys.argv[2:3]))
