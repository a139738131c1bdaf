"""``reid import torchreid|fastreid CHECKPOINT --arch ARCH --out RUN_DIR`` (parser here;
torch loads only when the command runs)."""

from __future__ import annotations

import argparse
from typing import Any


def add_import_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import", help="a torchreid or fast-reid checkpoint as a reid run directory",
        description="Map every key of a torchreid or fast-reid checkpoint onto the reid "
                    "network that computes the same embedding, and write a run directory "
                    "(recipe.toml, manifest.json, checkpoints/epoch-0000.pt, import.json) "
                    "that reid eval --run, reid extract and reid export read. A key that "
                    "does not map is an error, never dropped. torchreid archs: resnet50, "
                    "resnet50_fc512, osnet_x1_0 (x0_75, x0_5, x0_25); fast-reid archs (its "
                    "config names): bagtricks_R50, AGW_R50, sbs_R50 and their -ibn forms.")
    parser.add_argument("framework", choices=["torchreid", "fastreid"])
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="torchreid's model.pth.tar-N or fast-reid's model_final.pth")
    parser.add_argument("--arch", required=True, help="the architecture the checkpoint is of")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="change the written recipe, e.g. a test set: --set "
                             "'data.test=[{name=\"market1501\", root=\"/data/market1501\"}]' "
                             "or the input size: --set loader.height=384")
    parser.add_argument("--replace", action="store_true", help="overwrite an existing RUN_DIR")
    parser.set_defaults(func=command_import)


def command_import(args: argparse.Namespace, plugins: Any) -> int:
    from reidcore.importers.write import import_checkpoint

    record = import_checkpoint(args.framework, args.checkpoint, args.arch, args.out,
                               plugins=plugins, overrides=args.overrides,
                               replace=args.replace)
    print(f"imported {record['framework']} {record['arch']} from {record['checkpoint']}: "
          f"{len(record['loaded'])} keys loaded, {len(record['checked_not_loaded'])} checked, "
          f"{len(record['set_from_architecture'])} set from the architecture; "
          f"{record['num_classes']} training identities")
    print(f"embedding: {record['embedding']}")
    print(f"wrote {args.out} (recipe.toml, checkpoints/epoch-0000.pt, import.json); "
          f"evaluate with `reid eval --run {args.out} --set 'data.test=[{{name=..., "
          f"root=...}}]'`")
    return 0
