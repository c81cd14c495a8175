"""Few labels per task: default ``MultiTaskClassifierCV`` (every penalty) vs per-task
scikit-learn ``LogisticRegressionCV``.

Every estimator runs with its defaults: ``MultiTaskClassifierCV(penalty, random_state=seed)``
(``graph`` gets the complete task graph, its one required argument) and
``LogisticRegressionCV(max_iter=1000)`` fitted on each task alone (Cs=10, 5-fold stratified CV
on accuracy, ℓ2). ``pooled`` is one ``LogisticRegressionCV`` on all tasks' rows. Each task has
its own labelled training rows (per-task designs); the score is the test accuracy averaged over
tasks, then over seeds.

Data sets (``--datasets``):

* ``topics`` — sparse bag-of-words counts from shared topics: ``K`` topics (word distributions
  Dirichlet(0.05) over ``V`` words), documents with topic proportions θ ~ Dirichlet(0.2) and
  Poisson(60) + 10 words, features ``log(1 + count)`` scaled to unit row norm (scipy CSR).
  Task t labels a document 1 when ``θ·u_t`` is above its median, ``u_t = u₀ + τ v_t`` with a
  shared ``u₀`` and a task-specific ``v_t`` (standard normal, τ = ``--tau``), flipped with
  probability 0.05. ``--train`` labelled and 300 test documents per task.
* ``digits``, ``breast_cancer``, ``wine``, ``iris`` — scikit-learn's bundled data (no download),
  standardized on the pooled training rows. ``digits``: 10 one-vs-rest tasks; ``wine``/``iris``:
  one-vs-rest per class; ``breast_cancer``: 5 copies of the same task (a random partition of
  the rows into 5 "sites"). Each task draws its own ``--train`` training rows at random; its
  test rows are the rest (of its site, for ``breast_cancer``).

Run: ``python benchmarks/linear/bench_classification.py`` (``--seeds``, ``--datasets``,
``--penalties``, ``--train`` override).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn import datasets as skdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV

from mtlkit.cli.threads import positive_int
from mtlkit.linear import PENALTIES, MultiTaskClassifierCV

DATASETS = ("topics", "digits", "breast_cancer", "wine", "iris")


def topic_tasks(seed, n_train, *, n_tasks=10, n_words=2000, n_topics=20, tau=0.5):
    """Per-task (X_train, y_train, X_test, y_test) of the synthetic bag-of-words problem."""
    rng = np.random.default_rng(seed)
    topics = rng.dirichlet(np.full(n_words, 0.05), size=n_topics)
    shared = rng.standard_normal(n_topics)
    tasks = []
    for _ in range(n_tasks):
        u = shared + tau * rng.standard_normal(n_topics)
        n = n_train + 300
        theta = rng.dirichlet(np.full(n_topics, 0.2), size=n)
        lengths = rng.poisson(60, size=n) + 10
        counts = np.array([rng.multinomial(m, p) for m, p in zip(lengths, theta @ topics)])
        X = np.log1p(counts)
        X = sp.csr_matrix(X / np.linalg.norm(X, axis=1, keepdims=True))
        score = theta @ u
        y = (score > np.median(score)).astype(int)
        flip = rng.random(n) < 0.05
        y[flip] = 1 - y[flip]
        tasks.append((X[:n_train], y[:n_train], X[n_train:], y[n_train:]))
    return tasks


def bundled_tasks(name, seed, n_train):
    """Per-task splits of one of scikit-learn's bundled data sets (see the module docstring)."""
    rng = np.random.default_rng(seed)
    X, y = getattr(skdata, f"load_{name}")(return_X_y=True)
    if name == "breast_cancer":
        site = rng.permutation(y.size) % 5
        pools = [(np.flatnonzero(site == s), y) for s in range(5)]
    else:
        pools = [(np.arange(y.size), (y == c).astype(int)) for c in np.unique(y)]
    splits = []
    for rows, labels in pools:
        while True:  # both classes among the training rows
            perm = rng.permutation(rows)
            train, test = perm[:n_train], perm[n_train:]
            if np.unique(labels[train]).size == 2 and min(np.bincount(labels[train])) >= 2:
                break
        splits.append((train, test, labels))
    union = np.unique(np.concatenate([train for train, _, _ in splits]))
    mu, sd = X[union].mean(axis=0), X[union].std(axis=0)
    Z = (X - mu) / np.where(sd > 0, sd, 1.0)
    return [(Z[tr], lab[tr], Z[te], lab[te]) for tr, te, lab in splits]


def make_tasks(name, seed, args):
    if name == "topics":
        return topic_tasks(seed, args.train, tau=args.tau)
    return bundled_tasks(name, seed, args.train)


def per_task_logreg(tasks):
    preds = []
    for Xtr, ytr, Xte, _ in tasks:
        folds = min(5, int(np.bincount(ytr).min()))
        preds.append(LogisticRegressionCV(cv=folds, max_iter=1000).fit(Xtr, ytr).predict(Xte))
    return preds


def pooled_logreg(tasks):
    stack = sp.vstack if sp.issparse(tasks[0][0]) else np.vstack
    X = stack([t[0] for t in tasks])
    y = np.concatenate([t[1] for t in tasks])
    model = LogisticRegressionCV(max_iter=1000).fit(X, y)
    return [model.predict(t[2]) for t in tasks]


def mtl(penalty, tasks, seed):
    T = len(tasks)
    complete = [(s, t) for s in range(T) for t in range(s + 1, T)]
    extra = {"edges": complete} if penalty == "graph" else {}
    model = MultiTaskClassifierCV(penalty, random_state=seed, **extra)
    model.fit([t[0] for t in tasks], [t[1] for t in tasks])
    chosen = {k: getattr(model, f"{k}_") for k in ("l1_ratio", "rho", "shared")}
    return model.predict([t[2] for t in tasks]), {k: v for k, v in chosen.items() if v is not None}


def accuracy(tasks, preds):
    return float(np.mean([np.mean(p == t[3]) for t, p in zip(tasks, preds, strict=True)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=positive_int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, …")
    parser.add_argument("--datasets", type=str, default=",".join(DATASETS))
    parser.add_argument("--penalties", type=str, default=",".join(PENALTIES))
    parser.add_argument("--train", type=int, default=30, help="labelled rows per task")
    parser.add_argument("--tau", type=float, default=0.5, help="task-specific part (topics)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's notices of future defaults
    penalties = args.penalties.split(",")
    methods = ["per-task LogisticRegressionCV", "pooled LogisticRegressionCV", *penalties]
    print(f"{args.seeds} seeds, {args.train} labelled rows per task; mean test accuracy (%)")
    print("| data | method | accuracy | − per-task LRCV | fit s | chosen (last seed) |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        acc = {m: [] for m in methods}
        secs = {m: 0.0 for m in methods}
        chosen = {m: "" for m in methods}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            tasks = make_tasks(name, seed, args)
            for m in methods:
                t0 = time.perf_counter()
                if m.startswith("per-task"):
                    preds = per_task_logreg(tasks)
                elif m.startswith("pooled"):
                    preds = pooled_logreg(tasks)
                else:
                    preds, picked = mtl(m, tasks, seed)
                    chosen[m] = ", ".join(f"{k}={v:g}" for k, v in picked.items())
                secs[m] += time.perf_counter() - t0
                acc[m].append(accuracy(tasks, preds))
                print(
                    f"  {name} seed={seed} {m}: {acc[m][-1]:.3f} "
                    f"({time.perf_counter() - t0:.1f} s) {chosen[m]}",
                    file=sys.stderr,
                    flush=True,
                )
        base = np.mean(acc[methods[0]])
        for m in methods:
            a = np.array(acc[m])
            print(
                f"| {name} | {m} | {100 * a.mean():.1f} ± {100 * a.std():.1f} "
                f"| {100 * (a.mean() - base):+.1f} | {secs[m] / args.seeds:.2f} | {chosen[m]} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
