"""Jobs that run a task over many inputs: ``score`` (resumable batch scoring), ``bench``
(throughput and latency) and ``eval`` / ``eval_detect`` (a model on a labelled dataset: metrics,
plots, an HTML report), ``quantize`` (an int8 copy of a float model, calibrated on real images,
with its agreement report). ``_report`` (self-contained HTML pages) and ``_plots`` (matplotlib figures)
serve every job's report."""
