"""Evaluation of trained models on labelled data: probes, fine-tuning, zero-shot scoring, reports.

One module per purpose: `labelled` (reading labelled tables), `splits`, `metrics`, `probe`
(frozen-embedding linear models), `finetune` (a LightningModule), `mutations` and `zeroshot`
(variant-effect scoring), `report` (markdown, plots and metrics.json written atomically).
"""
