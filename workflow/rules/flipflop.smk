# The flip-flop study: data -> training (one ensemble per experiment x model x N) ->
# evaluation -> summary table and figures; attractor analysis per experiment -> its figures;
# the claims table.

CLAIMS_FILES.append("results/flipflop/claims.parquet")


rule prepare_flipflop_data:
    output:
        data="results/flipflop/data/{task}.parquet",
    log:
        "logs/prepare_flipflop_data/{task}.log",
    conda:
        "../envs/gnode.yaml"
    params:
        settings=planned("prepare_flipflop_data", "settings"),
        code=CODE["prepare_flipflop_data"],
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
    log:
        "logs/train_flipflop/{experiment}/{model}_N{n}.log",
    benchmark:
        "logs/benchmarks/train_flipflop/{experiment}/{model}_N{n}.tsv"
    conda:
        "../envs/gnode.yaml"
    threads: CFG.threads
    resources:
        mem_mb=lambda w: train_mem_mb("flipflop", w.experiment, w.model, int(w.n)),
        runtime=lambda w: train_runtime_min("flipflop", w.experiment, w.model, int(w.n)),
        gpu=USES_GPU,
    params:
        settings=planned("train_flipflop", "settings"),
        checkpoints=lambda w: f"results/checkpoints/flipflop/{w.experiment}/{w.model}_N{w.n}",
        code=CODE["train_flipflop"],
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
    log:
        "logs/evaluate_flipflop/{experiment}/{model}_N{n}.log",
    conda:
        "../envs/gnode.yaml"
    threads: CFG.threads
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=USES_GPU,
    params:
        run=planned("evaluate_flipflop", "run"),
        code=CODE["evaluate_flipflop"],
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
    params:
        code=CODE["summarise_flipflop"],
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
    log:
        "logs/plot_flipflop/{experiment}.log",
    conda:
        "../envs/gnode.yaml"
    params:
        figures=planned("plot_flipflop", "figures"),
        code=CODE["plot_flipflop"],
    message:
        "Drawing the flip-flop figures of {wildcards.experiment}"
    script:
        "../scripts/plot_flipflop.py"


rule analyse_flipflop_attractors:
    input:
        models=lambda w: flipflop_files("model.pt", w.experiment),
        evaluations=lambda w: flipflop_files("evaluation.parquet", w.experiment),
        data=lambda w: f"results/flipflop/data/{EXPERIMENTS[w.experiment].task}.parquet",
    output:
        **{t: f"results/flipflop/{{experiment}}/attractors/{t}.parquet" for t in FLIPFLOP_ANALYSIS_TABLES},
    log:
        "logs/analyse_flipflop_attractors/{experiment}.log",
    benchmark:
        "logs/benchmarks/analyse_flipflop_attractors/{experiment}.tsv"
    conda:
        "../envs/gnode.yaml"
    threads: CFG.threads
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=USES_GPU,
    params:
        settings=planned("analyse_flipflop_attractors", "settings"),
        code=CODE["analyse_flipflop_attractors"],
    message:
        "Fixed points, memory test and gates of every model of flip-flop experiment {wildcards.experiment}"
    script:
        "../scripts/analyse_flipflop_attractors.py"


rule plot_flipflop_attractors:
    input:
        **{t: f"results/flipflop/{{experiment}}/attractors/{t}.parquet" for t in FLIPFLOP_ANALYSIS_TABLES},
    output:
        attractors=report(
            "results/figures/flipflop/{experiment}_attractors.png",
            caption="../report/flipflop_attractors.rst",
            category="Flip-flop",
            subcategory="Attractors",
        ),
        memory=report(
            "results/figures/flipflop/{experiment}_memory.png",
            caption="../report/flipflop_memory.rst",
            category="Flip-flop",
            subcategory="Attractors",
        ),
        gates=report(
            "results/figures/flipflop/{experiment}_gates.png",
            caption="../report/flipflop_gates.rst",
            category="Flip-flop",
            subcategory="Attractors",
        ),
        other_formats=expand(
            "results/figures/flipflop/{{experiment}}_{name}.{fmt}",
            name=FLIPFLOP_ANALYSIS_FIGURES,
            fmt=EXTRA_FORMATS,
        ),
    log:
        "logs/plot_flipflop_attractors/{experiment}.log",
    conda:
        "../envs/gnode.yaml"
    params:
        figures=planned("plot_flipflop_attractors", "figures"),
        code=CODE["plot_flipflop_attractors"],
    message:
        "Drawing the phase portraits, memory test and gates of {wildcards.experiment}"
    script:
        "../scripts/plot_flipflop_attractors.py"


rule plot_flipflop_overview:
    input:
        evaluations=flipflop_files("evaluation.parquet"),
    output:
        test_loss=report(
            "results/figures/flipflop/test_loss_all_tasks.png",
            caption="../report/flipflop_test_loss_all_tasks.rst",
            category="Flip-flop",
        ),
        other_formats=expand("results/figures/flipflop/test_loss_all_tasks.{fmt}", fmt=EXTRA_FORMATS),
    log:
        "logs/plot_flipflop_overview.log",
    conda:
        "../envs/gnode.yaml"
    params:
        figures=planned("plot_flipflop_overview", "figures"),
        code=CODE["plot_flipflop_overview"],
    message:
        "Drawing the test loss of every model on every flip-flop task"
    script:
        "../scripts/plot_flipflop_overview.py"


rule claims_flipflop:
    input:
        summary=rules.summarise_flipflop.output.summary,
        fixed_points=flipflop_analysis("fixed_points"),
        memory=flipflop_analysis("memory"),
        data=[f"results/flipflop/data/{exp.task}.parquet" for exp in EXPERIMENTS.values()],
    output:
        claims="results/flipflop/claims.parquet",
        html=report("results/flipflop/claims.html", caption="../report/flipflop_claims.rst", category="Flip-flop"),
    log:
        "logs/claims_flipflop.log",
    conda:
        "../envs/gnode.yaml"
    params:
        settings=planned("claims_flipflop", "settings"),
        code=CODE["claims_flipflop"],
    message:
        "Testing the flip-flop findings (claims table)"
    script:
        "../scripts/claims_flipflop.py"
