# The real-world benchmarks: data (local copy or download) -> training of every model over all
# seeds, with early stopping and a test evaluation -> summary, claims and one figure per task.

if REALWORLD:
    CLAIMS_FILES.append("results/realworld/claims.parquet")


rule prepare_realworld_data:
    output:
        data="results/realworld/data/{task}.parquet",
    log:
        "logs/prepare_realworld_data/{task}.log",
    conda:
        "../envs/gnode.yaml"
    threads: 1
    resources:
        mem_mb=lambda w: REALWORLD_DATA_MEM[REALWORLD[w.task].dataset],
        runtime=60,
    params:
        settings=planned("prepare_realworld_data", "settings"),
        code=CODE["prepare_realworld_data"],
    message:
        "Preparing the data of real-world task {wildcards.task}"
    script:
        "../scripts/prepare_realworld_data.py"


rule train_realworld:
    input:
        data=rules.prepare_realworld_data.output.data,
    output:
        model="results/realworld/{task}/{model}/model.pt",
        history="results/realworld/{task}/{model}/history.parquet",
        evaluation="results/realworld/{task}/{model}/evaluation.parquet",
    log:
        "logs/train_realworld/{task}/{model}.log",
    benchmark:
        "logs/benchmarks/train_realworld/{task}/{model}.tsv"
    conda:
        "../envs/gnode.yaml"
    threads: CFG.threads
    resources:
        mem_mb=lambda w: train_mem_mb("realworld", w.task, w.model),
        runtime=lambda w: train_runtime_min("realworld", w.task, w.model),
        gpu=USES_GPU,
    params:
        settings=planned("train_realworld", "settings"),
        checkpoints=lambda w: f"results/checkpoints/realworld/{w.task}/{w.model}",
        code=CODE["train_realworld"],
    message:
        "Training {wildcards.model} on real-world task {wildcards.task} (all seeds)"
    script:
        "../scripts/train_realworld.py"


rule summarise_realworld:
    input:
        evaluations=realworld_files("evaluation.parquet"),
    output:
        summary="results/realworld/summary.parquet",
        claims="results/realworld/claims.parquet",
        html=report("results/realworld/summary.html", caption="../report/realworld_summary.rst", category="Real-world"),
    log:
        "logs/summarise_realworld.log",
    conda:
        "../envs/gnode.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        thresholds=planned("summarise_realworld", "thresholds"),
        code=CODE["summarise_realworld"],
    message:
        "Summarising the real-world benchmarks and their claims"
    script:
        "../scripts/summarise_realworld.py"


rule plot_realworld:
    input:
        evaluations=lambda w: realworld_files("evaluation.parquet", w.task),
        histories=lambda w: realworld_files("history.parquet", w.task),
    output:
        figure=report(
            "results/figures/realworld/{task}.png", caption="../report/realworld_task.rst", category="Real-world"
        ),
        other_formats=expand("results/figures/realworld/{{task}}.{fmt}", fmt=EXTRA_FORMATS),
    log:
        "logs/plot_realworld/{task}.log",
    conda:
        "../envs/gnode.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figures=planned("plot_realworld", "figures"),
        code=CODE["plot_realworld"],
    message:
        "Drawing the figure of real-world task {wildcards.task}"
    script:
        "../scripts/plot_realworld.py"
