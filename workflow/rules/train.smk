rule train:
    """Train one (agent, dataset, task, seed); resumes from the run's newest checkpoint."""
    input:
        unpack(get_dataset),
    output:
        summary=f"{RUN_DIR}/summary.json",
        metrics=f"{RUN_DIR}/metrics.csv",
        eval_curve=f"{RUN_DIR}/eval_curve.csv",
    params:
        # The resolved settings: a change reruns exactly the runs it touches.
        settings=get_train_settings,
        args=get_train_args,
        run_dir=get_run_dir,
        agent=get_base_agent,
    threads: config["train"]["threads"]
    log:
        "results/logs/train/{agent}/{env}/task{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{agent}/{env}/task{task}/seed{seed}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "sorlab train --agent {params.agent} --dataset {input.train} --task {wildcards.task}"
        " --seed {wildcards.seed} --out {params.run_dir} {params.args} > {log} 2>&1"
