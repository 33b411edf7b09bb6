# The reviewers' questions as studies (docs/studies.md): `studies:` in the config names them;
# each reads the runs of its agents (variants included) and writes one table and one figure.
# The helpers are functions of the config in sorlab.studies.workflow (rule files hold rules).
import sorlab.studies.workflow as studies_workflow


rule value_study:
    """The run's critic against discounted Monte-Carlo returns (dataset and fresh episodes)."""
    input:
        summary=SUMMARY,
    output:
        json=f"{RUN_DIR}/{layout.VALUE_FILE}",
        npz=f"{RUN_DIR}/{layout.VALUE_POINTS}",
    params:
        args=lambda w: studies_workflow.value_args(config),
        run_dir=get_run_dir,
    log:
        f"{LOGS}/value_study/{RUN_ID}.log",
    benchmark:
        f"{BENCHMARKS}/value_study/{RUN_ID}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m sorlab.studies value {params.run_dir} --out {output.json} {params.args}"
        " > {log} 2>&1"


rule study:
    """One study's table and figure from its runs."""
    input:
        lambda w: studies_workflow.study_inputs(config, w.study, eval_grid),
    output:
        tables=[
            report("results/tables/study_{study}.csv", caption="../report/study.rst", category="Studies"),
            "results/tables/study_{study}.md",
            "results/tables/study_{study}.tex",
        ],
        figures=[
            "paper_figures/study_{study}.pdf",
            report("paper_figures/study_{study}.png", caption="../report/study.rst", category="Studies"),
        ],
    params:
        runs=lambda w: " ".join(studies_workflow.study_run_dirs(config, w.study)),
        # Only this config's grid: a run shared with another study may have more points.
        grid=lambda w: studies_workflow.grid_args(config),
    wildcard_constraints:
        study="|".join(studies_workflow.STUDY_NAMES),
    log:
        f"{LOGS}/study/{{study}}.log",
    benchmark:
        f"{BENCHMARKS}/study/{{study}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m sorlab.studies report {wildcards.study} --runs {params.runs} {params.grid}"
        " --tables results/tables --figures paper_figures > {log} 2>&1"
