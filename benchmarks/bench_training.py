"""Training throughput: the real training path against a plain PyTorch loop, the feature cache, the loader.

Prints JSON lines ``{"name", "value", "unit"}``. Everything is measured in one run on toy shards written
to a temporary folder (so the ratio lines compare like with like on a shared machine):

- ``family_<model>_real_clips_s`` / ``family_<model>_plain_clips_s`` / ``family_<model>_ratio``: per model
  family (coeff_lstm, coeff_transformer, resnet18_lstm and resnet18_transformer on cached features, i3d
  at a small input), training clips per second of ``train_run`` (Lightning, in-memory data, its fit time)
  and of a plain loop (model, fused Adam as in training, the same loss) over the same in-memory batches;
  target ratio >= 0.7;
- ``coeff_lstm_50_epochs_1_thread_s``: a whole ``train_run`` of the coefficient LSTM, 50 epochs of 144
  clips of 30 frames, on one torch thread (target < 30 s), and its fit time alone;

- ``loader_*``: clips per second and frames per second of the training DataLoader alone (uint8 frames,
  then cached features), with 0 and 2 workers;
- ``train_uncached_fps`` / ``train_cached_fps``: ResNet18+LSTM optimisation steps (forward, masked loss,
  backward, Adam) in frames per second, end to end including loading; ``cache_speedup`` is their ratio;
- ``feature_cache_build_fps``: the one-off cost of caching the features.

With CUDA, it also measures ResNet18+LSTM training at 224 x 224 in bf16 with the batch already on the
GPU (the model's ceiling) and the loader at 224 x 224 (whether reading keeps up).

Usage: ``python benchmarks/bench_training.py [--size 64] [--frames 40] [--clip 16] [--recordings 24] [--threads 1]
[--families-only]``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch


def emit(name: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"name": name, "value": round(float(value), 3), "unit": unit, **extra}), flush=True)


def loader_throughput(data, clip: int, batches: int) -> tuple[float, float]:
    loader = data.train_dataloader()
    clips, start = 0, None
    for i, batch in enumerate(_cycle(loader, batches + 1)):
        if i == 0:  # the first batch pays for worker start-up
            start = time.perf_counter()
            continue
        clips += len(batch["label"])
    elapsed = time.perf_counter() - start
    return clips / elapsed, clips * clip / elapsed


def _cycle(loader, n):
    produced = 0
    while True:
        for batch in loader:
            yield batch
            produced += 1
            if produced == n:
                return


def train_throughput(module, data, clip: int, steps: int, device) -> float:
    module.to(device).train()
    optimizer = module.configure_optimizers()
    frames, start = 0, None
    for i, batch in enumerate(_cycle(data.train_dataloader(), steps + 1)):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        logits, alpha = module(batch)
        loss = module.losses(logits, alpha, batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i == 0:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            continue
        frames += batch["label"].shape[0] * clip
    if device.type == "cuda":
        torch.cuda.synchronize()
    return frames / (time.perf_counter() - start)


#: the real path trains on every training clip for every epoch, as the plain loop does (the default's
#: validation carve and early stopping would make it train fewer clips than the throughput counts)
EVERY_CLIP_EVERY_EPOCH = dict(val_fraction=0.0, patience=0)


def plain_loop_clips_per_s(config, dataset, seed: int = 0) -> float:
    """Training clips/s of the plainest loop: the model the run ``config`` builds, Adam, the same loss, over
    the same in-memory batches."""
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from facemorphic.models.factory import build_model
    from facemorphic.training.data import collated
    from facemorphic.training.module import masked_frame_squared_error

    epochs, batch_size, lambda_alpha = config.epochs, config.batch_size, config.lambda_alpha
    torch.manual_seed(seed)
    model = build_model(config.model, config.clip_length, i3d_input_size=config.i3d_input_size,
                        i3d_frame_step=config.i3d_frame_step).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr, fused=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collated)
    clips, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            if "features" in batch:
                logits, alpha = model.forward_features(batch["features"])
            elif "coefficients" in batch:
                logits, alpha = model(batch["coefficients"], batch["coefficient_valid"])
            else:
                logits, alpha = model(batch["frames"])
            loss = F.cross_entropy(logits, batch["label"])
            if lambda_alpha:
                loss = loss + lambda_alpha * masked_frame_squared_error(alpha, batch["alpha"], batch["alpha_valid"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clips += len(batch["label"])
    return clips / (time.perf_counter() - start)


def family_throughputs(root: Path, threads: int) -> None:
    """Per model family: clips/s of ``train_run``'s fit against the plain loop, and their ratio (on the CPU,
    where the plain loop runs; the fit time includes reading the split into memory once)."""
    from facemorphic.models.backbones import FrozenFrameEncoder
    from facemorphic.shards.io import list_samples
    from facemorphic.shards.toy import write_toy_shards
    from facemorphic.training import RunConfig, train_run
    from facemorphic.training.data import InMemoryClips
    from facemorphic.training.features import compute_split_features

    # the default run's sizes: 144 training recordings, clips of 30 frames, batches of 8
    write_toy_shards(root / "family", {"train": 144, "test": 24}, n_frames=(35, 45), size=32)
    encoder = FrozenFrameEncoder()
    for split in ("train", "test"):
        compute_split_features(root / "family" / split, "events", root / "family_features" / f"{split}.h5", encoder)
    write_toy_shards(root / "family_i3d", {"train": 16, "test": 4}, n_frames=(16, 20), size=32)
    families = [  # model, modality, shards, features, clip, batch, epochs, lambda_alpha
        ("coeff_lstm", "coefficients", "family", None, 30, 8, 10, 0.0),
        ("coeff_transformer", "coefficients", "family", None, 30, 8, 10, 0.0),
        ("resnet18_lstm", "events", "family", "family_features", 30, 8, 2, 1.0),
        ("resnet18_transformer", "events", "family", "family_features", 30, 8, 2, 1.0),
        ("i3d", "events", "family_i3d", None, 16, 4, 3, 1.0),  # 12 steps: 4 were noise-bound
    ]
    for model, modality, shards, features, clip, batch, epochs, lambda_alpha in families:
        context = dict(clip=clip, batch=batch, epochs=epochs, threads=threads)
        config = RunConfig(shards_dir=str(root / shards), out_dir=str(root / "runs" / model), model=model,
                           modality=modality, epochs=epochs, batch_size=batch, clip_length=clip,
                           lambda_alpha=lambda_alpha, features_dir=str(root / features) if features else None,
                           predict_splits=["test"], accelerator="cpu", **EVERY_CLIP_EVERY_EPOCH)
        summary = train_run(config)
        real = summary["epochs_run"] * summary["n_fit_recordings"] / summary["fit_seconds"]
        dataset = InMemoryClips(list_samples(root / shards / "train"), modality, clip,
                                features_path=root / features / "train.h5" if features else None)
        plain = plain_loop_clips_per_s(config, dataset)
        emit(f"family_{model}_real_clips_s", real, "clips/s", **context)
        emit(f"family_{model}_plain_clips_s", plain, "clips/s", **context)
        emit(f"family_{model}_ratio", real / plain, "ratio", baseline=f"family_{model}_plain_clips_s", target=0.7)


def coefficient_run_seconds(root: Path) -> None:
    """A whole coefficient-LSTM run of 50 epochs on one torch thread (the default run's sizes)."""
    from facemorphic.training import RunConfig, train_run

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    summary = train_run(RunConfig(shards_dir=str(root / "family"), out_dir=str(root / "runs" / "coeff_lstm_50"),
                                  model="coeff_lstm", modality="coefficients", epochs=50, batch_size=8,
                                  clip_length=30, predict_splits=["test"], accelerator="cpu",
                                  **EVERY_CLIP_EVERY_EPOCH))
    total = time.perf_counter() - start
    torch.set_num_threads(previous)
    emit("coeff_lstm_50_epochs_1_thread_s", total, "s", fit_seconds=summary["fit_seconds"], target=30,
         recordings=144, clip=30, batch=8)


def model_ceiling(device: torch.device, size: int, clip: int, batch: int, steps: int) -> float:
    """ResNet18+LSTM training frames/s, bf16 autocast, batch already on ``device`` (no loading)."""
    from facemorphic.training.module import AUModule

    torch.backends.cudnn.benchmark = True
    module = AUModule("resnet18_lstm", clip_length=clip, lambda_alpha=1.0).to(device).train()
    optimizer = module.configure_optimizers()
    data = {
        "frames": torch.randint(0, 256, (batch, clip, 3, size, size), dtype=torch.uint8, device=device),
        "alpha": torch.randn(batch, clip, 32, device=device),
        "alpha_valid": torch.ones(batch, clip, dtype=torch.bool, device=device),
        "label": torch.randint(0, 24, (batch,), device=device),
    }
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(steps + 3):
        if i == 3:
            synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits, alpha = module(data)
            loss = module.losses(logits, alpha, data)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize()
    return steps * batch * clip / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=40, help="frames per toy recording")
    parser.add_argument("--clip", type=int, default=16)
    parser.add_argument("--recordings", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--families-only", action="store_true",
                        help="only the per-family real/plain ratios and the 50-epoch coefficient run")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning_fabric").setLevel(logging.ERROR)

    from facemorphic.models.backbones import FrozenFrameEncoder
    from facemorphic.shards.toy import write_toy_shards
    from facemorphic.training.data import ShardDataModule
    from facemorphic.training.features import compute_split_features
    from facemorphic.training.module import AUModule

    cpu = torch.device("cpu")
    context = dict(size=args.size, clip=args.clip, batch=args.batch_size, threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        family_throughputs(root, torch.get_num_threads())
        coefficient_run_seconds(root)
        if args.families_only:
            return
        write_toy_shards(root / "shards", {"train": args.recordings}, n_frames=(args.frames, args.frames),
                         size=args.size)
        start = time.perf_counter()
        frames = compute_split_features(root / "shards" / "train", "events", root / "features" / "train.h5",
                                        FrozenFrameEncoder())
        emit("feature_cache_build_fps", frames / (time.perf_counter() - start), "frames/s", **context)

        for workers in (0, 2):
            for name, features in (("frames", None), ("features", root / "features")):
                data = ShardDataModule(root / "shards", "events", args.clip, args.batch_size, workers, features)
                clips_s, frames_s = loader_throughput(data, args.clip, batches=4 * args.steps)
                emit(f"loader_{name}_w{workers}_fps", frames_s, "frames/s", clips_per_s=round(clips_s, 2), **context)

        rates = {}
        for name, features in (("uncached", None), ("cached", root / "features")):
            torch.manual_seed(0)
            module = AUModule("resnet18_lstm", clip_length=args.clip, lambda_alpha=1.0)
            data = ShardDataModule(root / "shards", "events", args.clip, args.batch_size, 0, features)
            rates[name] = train_throughput(module, data, args.clip, args.steps, cpu)
            emit(f"train_{name}_fps", rates[name], "frames/s", device="cpu", **context)
        emit("cache_speedup", rates["cached"] / rates["uncached"], "ratio", baseline="train_uncached_fps")

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name()
            emit("gpu_train_resnet18_lstm_224_bf16_fps", model_ceiling(torch.device("cuda"), 224, 75, 32, 10),
                 "frames/s", device=gpu, clip=75, batch=32)
            write_toy_shards(root / "shards224", {"train": 16}, n_frames=(90, 90), size=224)
            data = ShardDataModule(root / "shards224", "events", 75, 32, 8)
            clips_s, frames_s = loader_throughput(data, 75, batches=6)
            emit("loader_frames_224_w8_fps", frames_s, "frames/s", clips_per_s=round(clips_s, 2), device=gpu)


if __name__ == "__main__":
    main()
