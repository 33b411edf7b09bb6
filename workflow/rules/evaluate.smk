rule evaluate:
    """Evaluate a trained run at one (M_inf, N) point: vectorised episodes on real OGBench."""
    input:
        summary=f"{RUN_DIR}/summary.json",
    output:
        f"{RUN_DIR}/eval/{{m_inf}}_{{n}}.json",
    params:
        settings=get_eval_settings,
        args=get_eval_args,
        run_dir=get_run_dir,
    threads: config["evaluate"]["threads"]
    log:
        "results/logs/evaluate/{agent}/{env}/task{task}/seed{seed}_{m_inf}_{n}.log",
    benchmark:
        "results/benchmarks/evaluate/{agent}/{env}/task{task}/seed{seed}_{m_inf}_{n}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "sorlab evaluate {params.run_dir} --m-inf {wildcards.m_inf} --n {wildcards.n}"
        " {params.args} --out {params.run_dir}/eval > {log} 2>&1"
