rule report_runs:
    """The config's runs and evaluation points, for the report (a file: the paper grid's list is
    longer than a command line may be). Rewritten when the config names other runs (params)."""
    output:
        REPORT_RUNS,
    params:
        selection=report_selection(),
    log:
        f"{LOGS}/report/report_runs.log",
    localrule: True
    run:
        write_report_runs(output[0], log[0], params.selection)


rule report:
    """Tables and figures from the config's runs: their summaries and evaluations (sorlab.report)."""
    input:
        runs=REPORT_RUNS,
        summaries=summary_files(),
        evaluations=eval_files(),
    output:
        tables=[
            report(path, caption=caption(Path(path).stem), category="Tables")
            if path.endswith(".csv") and Path(path).stem in TABLES
            else path
            for path in report_tables()
        ],
        figures=[
            report(path, caption=caption(Path(path).stem), category="Figures")
            if path.endswith(".png")
            else path
            for path in report_figures()
        ],
    params:
        final_evals=config["report"]["final_evals"],
    log:
        f"{LOGS}/report/report.log",
    benchmark:
        f"{BENCHMARKS}/report/report.tsv"
    conda:
        "../../environment.yml"
    shell:
        "sorlab report --results results --figures paper_figures --runs {input.runs} "
        "--final-evals {params.final_evals} > {log} 2>&1"
