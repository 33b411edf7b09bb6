# Restarting a run whose settings changed (params rerun trigger) discards its stale checkpoints;
# a run killed midway with the same settings resumes from its newest checkpoint.
if not config["train"]["group_seeds"]:

    rule train:
        """Train one (agent, dataset, task, seed); resumes from the run's newest checkpoint."""
        input:
            unpack(get_dataset),
        output:
            summary=SUMMARY,
            metrics=METRICS,
            eval_curve=EVAL_CURVE,
        params:
            # The resolved settings: a change reruns exactly the runs it touches.
            settings=get_train_settings,
            args=get_train_args,
            run_dir=get_run_dir,
            agent=get_base_agent,
        threads: config["train"]["threads"]
        log:
            f"{LOGS}/train/{RUN_ID}.log",
        benchmark:
            f"{BENCHMARKS}/train/{RUN_ID}.tsv"
        conda:
            "../../environment.yml"
        shell:
            "sorlab train --agent {params.agent} --dataset {input.train} --task {wildcards.task}"
            " --seed {wildcards.seed} --out {params.run_dir} {params.args}"
            " --restart-if-changed --threads {threads} > {log} 2>&1"

else:

    rule train_seeds:
        """Train every seed of one (agent, dataset, task) as one vmapped program
        (train.group_seeds): one job and one compilation, the same per-seed outputs."""
        input:
            unpack(get_dataset),
        output:
            summary=expand(SUMMARY, seed=config["seeds"], allow_missing=True),
            metrics=expand(METRICS, seed=config["seeds"], allow_missing=True),
            eval_curve=expand(EVAL_CURVE, seed=config["seeds"], allow_missing=True),
        params:
            settings=get_seed_group_settings,
            args=get_seed_group_args,
            seeds=",".join(map(str, config["seeds"])),
            out=get_seed_group_out,
            agent=get_base_agent,
        threads: config["train"]["threads"]
        log:
            f"{LOGS}/train/{{agent}}/{{env}}/task{{task}}/seeds.log",
        benchmark:
            f"{BENCHMARKS}/train/{{agent}}/{{env}}/task{{task}}/seeds.tsv"
        conda:
            "../../environment.yml"
        shell:
            "sorlab train --agent {params.agent} --dataset {input.train} --task {wildcards.task}"
            " --seeds {params.seeds} --out '{params.out}' {params.args}"
            " --restart-if-changed --threads {threads} > {log} 2>&1"
