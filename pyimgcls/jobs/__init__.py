"""Jobs that run a task over many inputs: ``score`` (resumable batch scoring), ``bench``
(throughput and latency) and ``eval`` / ``eval_detect`` (a model on a labelled dataset: metrics,
plots, an HTML report). ``_report`` (self-contained HTML pages) and ``_plots`` (matplotlib figures)
serve every job's report."""
