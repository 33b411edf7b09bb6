rule evaluate:
    """Evaluate a trained run at one (M_inf, N) point: vectorised episodes on real OGBench."""
    input:
        summary=SUMMARY,
    output:
        EVAL_FILE,
    params:
        settings=get_eval_settings,
        args=get_eval_args,
        run_dir=get_run_dir,
    threads: config["evaluate"]["threads"]
    log:
        f"{LOGS}/evaluate/{RUN_ID}_{{m_inf}}_{{n}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate/{RUN_ID}_{{m_inf}}_{{n}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "sorlab evaluate {params.run_dir} --m-inf {wildcards.m_inf} --n {wildcards.n}"
        " {params.args} --out {params.run_dir}/eval > {log} 2>&1"
