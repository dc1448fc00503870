"""``realsr train``: train an SR model from a YAML config into a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .main import EXIT_OK, cli


@cli.command("train", context_settings={"ignore_unknown_options": False})
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder (config.yaml, log.jsonl, checkpoints/, model.safetensors, samples/, curves.png).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its newest readable checkpoint "
              "(its config.yaml is used; OVERRIDES still apply).")
@click.option("--overwrite", is_flag=True, help="Start again in a run folder that already holds a run.")
@click.option("--train-data", type=click.Path(path_type=Path), default=None,
              help="Training data folder (overrides data.train).")
@click.option("--val-data", type=click.Path(path_type=Path), default=None,
              help="Validation pair dataset (overrides data.val).")
@click.option("--source-data", type=click.Path(path_type=Path), default=None,
              help="method ddnsr: folder of real LR photos, the unpaired source domain (overrides ddnsr.source).")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (overrides engine.device).")
@click.pass_context
def train_command(ctx: click.Context, config: Path | None, overrides: tuple[str, ...], out: Path, resume: bool,
                  overwrite: bool, train_data: Path | None, val_data: Path | None, source_data: Path | None,
                  device: str | None) -> int:
    """Train the model described by CONFIG (YAML; see examples/*.yaml and docs/train.md) into OUT.

    OVERRIDES are key=value pairs on the config, values read as YAML, e.g.
    `optim.iterations=2000 data.batch_size=8 model.args.nb=4` (a mapping value such as
    `'model.args={nb: 4}'`, quoted for the shell, replaces the whole mapping).
    Several GPUs or nodes: `torchrun --nproc_per_node N -m realsr.cli train CONFIG -o RUN`.
    """
    from realsr.errors import UsageError
    from realsr.train.config import load_config, resume_config
    from realsr.train.trainer import Trainer

    extra = list(overrides)
    if train_data is not None:
        extra.append(f"data.train={json.dumps(str(train_data))}")  # quoted: read as YAML
    if val_data is not None:
        extra.append(f"data.val={json.dumps(str(val_data))}")
    if source_data is not None:
        extra.append(f"ddnsr.source={json.dumps(str(source_data))}")
    if device is not None:
        extra.append(f"engine.device={device}")
    if resume:
        if config is not None:
            if "=" not in str(config):
                raise UsageError("with --resume the run's own config.yaml is used: give changes as key=value "
                                 "overrides, not a CONFIG file", config)
            extra.insert(0, str(config))
            config = None
        cfg = resume_config(out, extra)
    else:
        if config is None:
            raise UsageError("give a CONFIG file (see examples/), or --resume")
        cfg = load_config(config, extra)
    if not ctx.obj.get("progress", True):
        cfg.log.progress = False
    trainer = Trainer(cfg, out, resume=resume, overwrite=overwrite)
    try:
        res = trainer.run()
    finally:
        trainer.close()
    if trainer.main:
        best = res["best"]
        extra_txt = f", best validation PSNR {best['psnr']:.3f} dB at iteration {best['iteration']}" if best else ""
        click.echo(f"realsr: trained to iteration {res['iteration']} in {res['seconds']:.0f} s{extra_txt}; "
                   f"model: {out / 'model.safetensors'}", err=True)
        if cfg.method == "ddnsr":
            click.echo(f"realsr: degradation network: {out / 'degradation.safetensors'} "
                       f"(realsr degrade --mode network --weights ... --source ...)", err=True)
    return EXIT_OK
