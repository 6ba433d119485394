"""Zero-shot AUC / MAE on all clips vs only the clips whose view can show the finding.

Why: a synthetic clip inherits its study's findings, but the renderer draws a pacemaker lead only in
views that cut the RA or RV, a MitraClip only where the mitral valve is, a TAVR only where the aortic
valve is, EF only where the LV is (echosearch/synth/views.py). On an all-views archive the issue-7
targets are then partly out of any model's reach; this prints both figures side by side.

    python benchmarks/visible_findings.py --archive heldout demo05 bpe01 demo04
"""

from __future__ import annotations

import argparse

import numpy as np

from echosearch.models import load_model
from echosearch.models.registry import resolve_bundle
from echosearch.synth.views import VIEW_SPECS
from echosearch.training.evaluate import auc, embed_archive, zero_shot

SHOWN = {
    "pacemaker": lambda v: v.right_heart,
    "mitraclip": lambda v: "MV" in v.shows,
    "tavr": lambda v: "AV" in v.shows,
    "ejection_fraction": lambda v: v.lv_motion,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    for model in args.models:
        enc = load_model(model, device="cpu", precision="fp32")
        bundle = resolve_bundle(model)
        emb = embed_archive(enc, args.archive, args.frames, progress=False)
        out = zero_shot(enc, emb, bundle.load_tasks(), bundle.thresholds)
        views = [c.row.get("view", "") for c in emb.clips]
        parts = []
        for name, shown in SHOWN.items():
            if name not in out:
                continue
            e = out[name]
            # these tasks have a truth for every clip, so _pred/_truth line up with emb.clips
            vis = np.array([v in VIEW_SPECS and shown(VIEW_SPECS[v]) for v in views])
            p, t = e["_pred"], e["_truth"]
            if e["kind"] == "regression":
                parts.append(f"{name} MAE {np.abs(p - t).mean():.2f} -> {np.abs(p[vis] - t[vis]).mean():.2f}")
            else:
                parts.append(
                    f"{name} AUC {auc(p, t):.3f} -> {auc(p[vis], t[vis]):.3f} ({int(vis.sum())} clips)"
                )
        print(f"{model} (all clips -> clips whose view shows it): " + "; ".join(parts))


if __name__ == "__main__":
    main()
