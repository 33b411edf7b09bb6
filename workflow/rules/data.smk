# Datasets: <data.dir>/{dataset}.npz and {dataset}-val.npz in OGBench's format, regenerated offline
# with OGBench's oracles (`sorlab data generate`) or fetched from the OGBench server
# (`sorlab data download`), as config["data"]["source"] says. One rule name, `dataset`, either way.
# The `sorlab` command must be on PATH (the project venv's bin/, or the conda env via --use-conda).
# Self-contained (tests/test_data_*.py include it alone with a `data:` config): literal paths.


if config["data"]["source"] == "download":

    rule dataset:
        output:
            train=os.path.join(config["data"]["dir"], "{dataset}.npz"),
            val=os.path.join(config["data"]["dir"], "{dataset}-val.npz"),
        wildcard_constraints:
            # "-vN" at the end keeps "<name>-val.npz" from matching {dataset}.npz
            dataset=r"[a-z0-9-]+-v\d+",
        log:
            "results/logs/data/{dataset}.log",
        benchmark:
            "results/benchmarks/data/{dataset}.tsv"
        params:
            out=lambda w, output: os.path.dirname(output.train),
            base_url=(
                f"--base-url {config['data']['base_url']}" if config["data"]["base_url"] else ""
            ),
        conda:
            "../../environment.yml"
        shell:
            "sorlab data download {wildcards.dataset} --out {params.out} {params.base_url}"
            " > {log} 2>&1"

else:

    rule dataset:
        output:
            train=os.path.join(config["data"]["dir"], "{dataset}.npz"),
            val=os.path.join(config["data"]["dir"], "{dataset}-val.npz"),
        wildcard_constraints:
            dataset=r"[a-z0-9-]+-v\d+",
        log:
            "results/logs/data/{dataset}.log",
        benchmark:
            "results/benchmarks/data/{dataset}.tsv"
        threads: config["data"]["workers"]
        params:
            out=lambda w, output: os.path.dirname(output.train),
            seed=config["data"]["seed"],
            # null episodes = the official size
            episodes=(
                f"--episodes {config['data']['episodes']}" if config["data"]["episodes"] else ""
            ),
        conda:
            "../../environment.yml"
        shell:
            "sorlab data generate {wildcards.dataset} --out {params.out} --seed {params.seed}"
            " --workers {threads} {params.episodes} > {log} 2>&1"
