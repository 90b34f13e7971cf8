# The trainability study (docs/trainability.md): nODE/gnODE x depth x nonlinearity, each job
# training the inits x seeds as one ensemble on a flip-flop task after diagnosing it at
# initialisation; then the gathered tables, summary, claims and figures.

TR_CELLS = tr.cells(CFG)
TR_TABLES = list(tr.JOB_TABLES)  # members, history, propagation, spectrum
TR_FIGURES = ["learning_curves", "init", "final_loss"]
if TR_CELLS:
    CLAIMS_FILES.append("results/trainability/claims.parquet")


wildcard_constraints:
    depth=r"\d+",
    activation=r"[a-z]+",


rule train_trainability:
    input:
        data=lambda w: f"results/flipflop/data/{CFG.trainability.task}.parquet",
    output:
        **{t: f"results/trainability/{{model}}_L{{depth}}_{{activation}}/{t}.parquet" for t in TR_TABLES},
    log:
        "logs/train_trainability/{model}_L{depth}_{activation}.log",
    benchmark:
        "logs/benchmarks/train_trainability/{model}_L{depth}_{activation}.tsv"
    conda:
        "../envs/gnode.yaml"
    threads: CFG.threads
    resources:
        mem_mb=lambda w: train_mem_mb("trainability", w.model, int(w.depth), w.activation),
        runtime=lambda w: train_runtime_min("trainability", w.model, int(w.depth), w.activation),
        gpu=USES_GPU,
    params:
        settings=planned("train_trainability", "settings"),
        checkpoints=lambda w: f"results/checkpoints/trainability/{w.model}_L{w.depth}_{w.activation}",
        code=CODE["train_trainability"],
    message:
        "Diagnosing and training {wildcards.model} with F of depth {wildcards.depth} ({wildcards.activation}) for the trainability study"
    script:
        "../scripts/train_trainability.py"


rule summarise_trainability:
    input:
        **{t: tr.job_files(CFG, t) for t in TR_TABLES},
    output:
        **{t: f"results/trainability/{t}.parquet" for t in TR_TABLES},
        summary="results/trainability/summary.parquet",
        html=report(
            "results/trainability/summary.html", caption="../report/trainability_summary.rst", category="Trainability"
        ),
        claims="results/trainability/claims.parquet",
    log:
        "logs/summarise_trainability.log",
    conda:
        "../envs/gnode.yaml"
    params:
        settings=planned("summarise_trainability", "settings"),
        code=CODE["summarise_trainability"],
    message:
        "Gathering the trainability study: summary per cell and claims"
    script:
        "../scripts/summarise_trainability.py"


rule plot_trainability:
    input:
        members="results/trainability/members.parquet",
        history="results/trainability/history.parquet",
        propagation="results/trainability/propagation.parquet",
    output:
        learning_curves=report(
            "results/figures/trainability/learning_curves.png",
            caption="../report/trainability_learning_curves.rst",
            category="Trainability",
        ),
        init=report(
            "results/figures/trainability/init.png", caption="../report/trainability_init.rst", category="Trainability"
        ),
        final_loss=report(
            "results/figures/trainability/final_loss.png",
            caption="../report/trainability_final_loss.rst",
            category="Trainability",
        ),
        other_formats=expand("results/figures/trainability/{name}.{fmt}", name=TR_FIGURES, fmt=EXTRA_FORMATS),
    log:
        "logs/plot_trainability.log",
    conda:
        "../envs/gnode.yaml"
    params:
        figures=planned("plot_trainability", "figures"),
        compare_epoch=planned("plot_trainability", "compare_epoch"),
        code=CODE["plot_trainability"],
    message:
        "Drawing the trainability figures"
    script:
        "../scripts/plot_trainability.py"
