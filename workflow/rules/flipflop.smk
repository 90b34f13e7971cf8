# The flip-flop study: data -> training (one ensemble per experiment x model x N) ->
# evaluation -> summary table and figures.


rule prepare_flipflop_data:
    output:
        data="results/flipflop/data/{task}.parquet",
    params:
        settings=lambda w: ff.data_settings(CFG, w.task),
        code=CODE["data"],
    log:
        "logs/prepare_flipflop_data/{task}.log",
    conda:
        "../envs/gnode.yaml"
    message:
        "Generating the {wildcards.task} flip-flop trials"
    script:
        "../scripts/prepare_flipflop_data.py"


rule train_flipflop:
    input:
        data=lambda w: f"results/flipflop/data/{EXPERIMENTS[w.experiment].task}.parquet",
    output:
        model="results/flipflop/{experiment}/{model}_N{n}/model.pt",
        history="results/flipflop/{experiment}/{model}_N{n}/history.parquet",
    params:
        settings=lambda w: ff.job_settings(CFG, w.experiment, w.model),
        checkpoints=lambda w: f"results/checkpoints/flipflop/{w.experiment}/{w.model}_N{w.n}",
        code=CODE["train"],
    threads: CFG.threads
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=USES_GPU,
    log:
        "logs/train_flipflop/{experiment}/{model}_N{n}.log",
    benchmark:
        "logs/benchmarks/train_flipflop/{experiment}/{model}_N{n}.tsv"
    conda:
        "../envs/gnode.yaml"
    message:
        "Training {wildcards.model} (N={wildcards.n}) on flip-flop experiment {wildcards.experiment}"
    script:
        "../scripts/train_flipflop.py"


rule evaluate_flipflop:
    input:
        model=rules.train_flipflop.output.model,
        data=rules.train_flipflop.input.data,
    output:
        evaluation="results/flipflop/{experiment}/{model}_N{n}/evaluation.parquet",
        examples="results/flipflop/{experiment}/{model}_N{n}/examples.parquet",
    params:
        run=RUN,
        code=CODE["evaluate"],
    threads: CFG.threads
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=USES_GPU,
    log:
        "logs/evaluate_flipflop/{experiment}/{model}_N{n}.log",
    conda:
        "../envs/gnode.yaml"
    message:
        "Evaluating {wildcards.model} (N={wildcards.n}) on {wildcards.experiment}"
    script:
        "../scripts/evaluate_flipflop.py"


rule summarise_flipflop:
    input:
        evaluations=flipflop_files("evaluation.parquet"),
    output:
        summary="results/flipflop/summary.parquet",
        html=report("results/flipflop/summary.html", caption="../report/flipflop_summary.rst", category="Flip-flop"),
    log:
        "logs/summarise_flipflop.log",
    conda:
        "../envs/gnode.yaml"
    message:
        "Summarising the flip-flop study"
    script:
        "../scripts/summarise_flipflop.py"


rule plot_flipflop:
    input:
        evaluations=lambda w: flipflop_files("evaluation.parquet", w.experiment),
        examples=lambda w: flipflop_files("examples.parquet", w.experiment),
        histories=lambda w: flipflop_files("history.parquet", w.experiment),
    output:
        test_loss=report(
            "results/figures/flipflop/{experiment}_test_loss.png",
            caption="../report/flipflop_test_loss.rst",
            category="Flip-flop",
        ),
        example=report(
            "results/figures/flipflop/{experiment}_example.png",
            caption="../report/flipflop_example.rst",
            category="Flip-flop",
        ),
        learning_curves=report(
            "results/figures/flipflop/{experiment}_learning_curves.png",
            caption="../report/flipflop_learning_curves.rst",
            category="Flip-flop",
        ),
        other_formats=expand(
            "results/figures/flipflop/{{experiment}}_{name}.{fmt}",
            name=["test_loss", "example", "learning_curves"],
            fmt=EXTRA_FORMATS,
        ),
    params:
        figures=CFG.figures.model_dump(),
        code=CODE["plot_flipflop"],
    log:
        "logs/plot_flipflop/{experiment}.log",
    conda:
        "../envs/gnode.yaml"
    message:
        "Drawing the flip-flop figures of {wildcards.experiment}"
    script:
        "../scripts/plot_flipflop.py"
