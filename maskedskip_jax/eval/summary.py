"""The evaluation's closing lines on the console: the post-processing table, the headline metrics, the baselines
beside the model ("model 0.93 micro vs best baseline 0.84 (flow)"), a composite score's terms alone, the alarm."""

from typing import Any

from maskedskip_jax.eval import baseline_eval
from maskedskip_jax.eval import report as eval_report
from maskedskip_jax.eval import threshold


def lines(report: dict[str, Any], out_dir: str) -> list[str]:
  out = [report["postprocess_table_markdown"]]
  line = (
    f"eval ({report['postprocess']}): frame AUC micro {report['frame_auc_micro']}, macro "
    f"{report['frame_auc_macro']}, EER {report['eer']}, AP {report['average_precision']}"
  )
  if report["pixel"]:
    p = report["pixel"]
    line += f"; pixel AUROC {p['pixel_auroc']}, RBDC {p['rbdc']}, TBDC {p['tbdc']} at {p['resolution']}"
  out.append(f"{line}; {report['num_frames']} frames at {report['frames_per_second']:.0f} frames/s -> {out_dir}")
  if report["baselines"]:
    each = ", ".join(f"{n} {eval_report.cell(m['frame_auc_micro'])}" for n, m in report["baselines"].items())
    out.append(
      f"baselines ({report['postprocess']}), frame AUC micro: {each}; "
      f"{baseline_eval.comparison(report['frame_auc_micro'], report['baselines'])}"
    )
  if report.get("score_components"):
    each = ", ".join(f"{n} {eval_report.cell(m['frame_auc_micro'])}" for n, m in report["score_components"].items())
    out.append(f"the frame score's terms alone ({report['postprocess']}), frame AUC micro: {each}")
  out.append(threshold.summary(report["alarm"]))
  return out


def print_lines(report: dict[str, Any], out_dir: str) -> None:
  for line in lines(report, out_dir):
    print(line)
