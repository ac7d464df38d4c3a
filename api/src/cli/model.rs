//! `rapport model`: evaluate a model on your own CSV (no database), train one on a
//! workspace, rescore a workspace.

use anyhow::Context as _;

use super::Global;

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Fits a model to your own exported data and reports how it does.
    Evaluate {
        /// Which model.
        #[arg(long, value_enum)]
        kind: ModelKind,
        /// The data, with a header row: for `clv`, `customer,frequency,recency,T[,monetary]`;
        /// for `classifier`, any columns plus the label column.
        #[arg(long)]
        csv: std::path::PathBuf,
        /// `classifier`: the column to predict.
        #[arg(long, required_if_eq("kind", "classifier"))]
        label: Option<String>,
        /// `classifier`: the label value that counts as positive (default 1, true or yes).
        #[arg(long)]
        positive: Option<String>,
        /// `classifier`: an id column, not used as a feature.
        #[arg(long)]
        id: Option<String>,
        /// `classifier`: a column whose `train` / `test` values split the rows (default: a
        /// stratified 80/20 split with a fixed seed).
        #[arg(long)]
        split: Option<String>,
        /// `classifier`: logistic regression, gradient-boosted trees, or `auto` (both; the
        /// better validation AUC is kept).
        #[arg(long, value_enum, default_value_t = AlgorithmArg::Auto)]
        algorithm: AlgorithmArg,
        /// `clv`: the repeat-purchase model.
        #[arg(long, value_enum, default_value_t = RepeatModelArg::Bgnbd)]
        model: RepeatModelArg,
        /// Predict this many periods ahead for every customer (needs --out).
        #[arg(long, requires = "out")]
        predict: Option<f64>,
        /// Where predictions go: `customer,p_alive,expected_purchases,expected_value`.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Trains a model on a workspace's data (as the trainModel mutation does) and prints
    /// the new version as JSON.
    Train {
        /// Which model.
        #[arg(long, value_enum)]
        kind: TrainKind,
        /// The workspace.
        #[arg(long)]
        workspace: i64,
        /// Fewest examples of each class (or repeat customers, multi-product orders).
        #[arg(long, default_value_t = 50)]
        min_positives: usize,
        /// Lead score, win probability, churn: logistic regression, gradient-boosted trees,
        /// or `auto` (both; the better validation AUC is kept).
        #[arg(long, value_enum, default_value_t = AlgorithmArg::Auto)]
        algorithm: AlgorithmArg,
    },
    /// Rescores a workspace's contacts and deals with the active models and prints how
    /// many were scored and how fast.
    Rescore {
        /// The workspace.
        #[arg(long)]
        workspace: i64,
    },
}
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum TrainKind {
    LeadScore,
    WinProbability,
    CustomerValue,
    Recommendations,
    BehaviourSegments,
    Churn,
}
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ModelKind {
    /// BG/NBD repeat purchases and Gamma-Gamma spend.
    Clv,
    /// The logistic pipeline behind lead scoring, win probability and churn.
    Classifier,
}
/// Runs one model command; evaluation needs no database.
pub(crate) async fn run(cli: &Global, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Evaluate {
            kind: ModelKind::Clv,
            csv,
            model,
            predict,
            out,
            json,
            ..
        } => evaluate_clv(&csv, model, predict.zip(out), json),
        Command::Evaluate {
            kind: ModelKind::Classifier,
            csv,
            label,
            positive,
            id,
            split,
            json,
            algorithm,
            ..
        } => {
            let spec = rapport_engine::intelligence::models::classifier::CsvSpec {
                label: label.unwrap_or_default(),
                positive,
                id,
                split,
            };
            evaluate_classifier(&csv, &spec, algorithm.into(), json)
        }
        Command::Train {
            kind,
            workspace,
            min_positives,
            algorithm,
        } => {
            let options = rapport_engine::intelligence::analytics::lead_score::TrainOptions {
                min_positives,
                algorithm: algorithm.into(),
                ..Default::default()
            };
            train(&cli.connect().await?, kind, workspace, &options).await
        }
        Command::Rescore { workspace } => rescore(&cli.connect().await?, workspace).await,
    }
}

async fn rescore(conn: &sea_orm::DatabaseConnection, workspace: i64) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let scored = rapport_engine::intelligence::analytics::rescore_all(conn, workspace).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "scored": scored,
            "seconds": seconds,
            "per_second": scored as f64 / seconds,
        })
    );
    Ok(())
}

async fn train(
    conn: &sea_orm::DatabaseConnection,
    kind: TrainKind,
    workspace: i64,
    options: &rapport_engine::intelligence::analytics::lead_score::TrainOptions,
) -> anyhow::Result<()> {
    use rapport_engine::{intelligence::analytics, platform::auth::Principal, values};
    let kind = match kind {
        TrainKind::LeadScore => values::ModelKind::LeadScore,
        TrainKind::WinProbability => values::ModelKind::WinProbability,
        TrainKind::CustomerValue => values::ModelKind::CustomerValue,
        TrainKind::Recommendations => values::ModelKind::Recommendations,
        TrainKind::BehaviourSegments => values::ModelKind::BehaviourSegments,
        TrainKind::Churn => values::ModelKind::Churn,
    };
    let started = std::time::Instant::now();
    let version = analytics::train(conn, &Principal::owner(workspace), kind, options).await?;
    let mut report = serde_json::json!({
        "id": version.id,
        "kind": version.kind,
        "version": version.version,
        "status": version.status,
        "message": version.message,
        "rows": version.rows_used,
        "positives": version.positives,
        "metrics": version.metrics,
        "seconds": started.elapsed().as_secs_f64(),
    });
    report["scored"] = rapport_engine::intelligence::analytics::registry::count_scores(
        conn, workspace, kind, version.id,
    )
    .await?
    .into();
    println!("{report}");
    Ok(())
}
fn evaluate_classifier(
    csv: &std::path::Path,
    spec: &rapport_engine::intelligence::models::classifier::CsvSpec,
    algorithm: rapport_engine::intelligence::models::classifier::Algorithm,
    json: bool,
) -> anyhow::Result<()> {
    use rapport_engine::intelligence::models::classifier::{Classifier, Split, read_labelled_csv};
    let bytes = std::fs::read(csv).with_context(|| format!("reading {}", csv.display()))?;
    let data = read_labelled_csv(&bytes, spec)?;
    let split = data
        .split
        .clone()
        .unwrap_or_else(|| Split::stratified(&data.labels));
    let (model, report) = Classifier::train(&data.table, &data.labels, &split, algorithm)?;
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["features"] = model.layout().len().into();
        println!("{value}");
        return Ok(());
    }
    let auc = report
        .auc
        .map_or("n/a (the test rows hold one class)".to_string(), |a| {
            format!("{a:.4}")
        });
    println!(
        "rows             {} train, {} test",
        report.rows_train, report.rows_test
    );
    println!(
        "positives        {} train, {} test",
        report.positives_train, report.positives_test
    );
    println!("features         {} columns", model.layout().len());
    println!("algorithm        {}", report.algorithm.as_str());
    for c in &report.candidates {
        let auc = c.validation_auc.map_or("n/a".into(), |a| format!("{a:.4}"));
        println!(
            "  {:<14} validation AUC {auc}, {:.2} s",
            c.algorithm.as_str(),
            c.fit_seconds
        );
    }
    println!("imputed values   {}", report.imputed);
    println!("AUC              {auc}");
    println!("log loss         {:.4}", report.log_loss);
    println!("fit time         {:.2} s", report.fit_seconds);
    println!("calibration      predicted -> observed (rows)");
    for bin in &report.calibration {
        println!(
            "  {:.1}-{:.1}        {:.3} -> {:.3} ({})",
            bin.from, bin.to, bin.predicted, bin.observed, bin.rows
        );
    }
    Ok(())
}
/// `--model`, as clap reads it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum RepeatModelArg {
    /// BG/NBD: customers may drop out just after a purchase.
    Bgnbd,
    /// Pareto/NBD: customers may drop out at any moment.
    ParetoNbd,
}

/// `--algorithm`, as clap reads it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum AlgorithmArg {
    Logistic,
    Boosted,
    Auto,
}

impl From<AlgorithmArg> for rapport_engine::intelligence::models::classifier::Algorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::Logistic => Self::Logistic,
            AlgorithmArg::Boosted => Self::Boosted,
            AlgorithmArg::Auto => Self::Auto,
        }
    }
}

fn evaluate_clv(
    csv: &std::path::Path,
    model: RepeatModelArg,
    predict: Option<(f64, std::path::PathBuf)>,
    json: bool,
) -> anyhow::Result<()> {
    use rapport_engine::intelligence::models::clv::{
        BgNbd, GammaGamma, RepeatPurchases, Spend, read_summary_csv,
    };
    use rapport_engine::intelligence::models::pareto_nbd::ParetoNbd;
    let text =
        std::fs::read_to_string(csv).with_context(|| format!("reading {}", csv.display()))?;
    let rows = read_summary_csv(&text)?;
    let histories: Vec<_> = rows.iter().map(|r| r.history).collect();
    let started = std::time::Instant::now();
    // The parameters by name, the fit's log-likelihood, and the model to predict with.
    let (parameters, log_likelihood, repeat): (Vec<(&str, f64)>, f64, Box<dyn RepeatPurchases>) =
        match model {
            RepeatModelArg::Bgnbd => {
                let fit = BgNbd::fit(&histories)?;
                let m = fit.model;
                let names = [("r", m.r), ("alpha", m.alpha), ("a", m.a), ("b", m.b)];
                (names.to_vec(), fit.log_likelihood, Box::new(m))
            }
            RepeatModelArg::ParetoNbd => {
                let fit = ParetoNbd::fit(&histories)?;
                let m = fit.model;
                let names = [("r", m.r), ("alpha", m.alpha), ("s", m.s), ("beta", m.beta)];
                (names.to_vec(), fit.log_likelihood, Box::new(m))
            }
        };
    let spend: Option<Vec<Spend>> = rows
        .iter()
        .map(|r| {
            r.monetary.map(|m| Spend {
                frequency: r.history.frequency,
                mean_value: m,
            })
        })
        .collect();
    let gg = spend.as_deref().map(GammaGamma::fit).transpose()?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let name = match model {
        RepeatModelArg::Bgnbd => "BG/NBD",
        RepeatModelArg::ParetoNbd => "Pareto/NBD",
    };
    if json {
        let mut report = serde_json::json!({
            "model": name,
            "log_likelihood": log_likelihood, "customers": rows.len(), "fit_seconds": fit_seconds,
        });
        for (k, v) in &parameters {
            report[*k] = (*v).into();
        }
        if let Some(g) = &gg {
            report["p"] = g.model.p.into();
            report["q"] = g.model.q.into();
            report["v"] = g.model.v.into();
        }
        println!("{report}");
    } else {
        println!("customers        {}", rows.len());
        let shown: Vec<String> = parameters
            .iter()
            .map(|(k, v)| format!("{k} = {v:.4}"))
            .collect();
        println!("{name:<16} {}", shown.join("  "));
        println!("log-likelihood   {log_likelihood:.2}");
        if let Some(g) = &gg {
            println!(
                "Gamma-Gamma      p = {:.4}  q = {:.4}  v = {:.4}  (log-likelihood {:.2})",
                g.model.p, g.model.q, g.model.v, g.log_likelihood
            );
        }
        println!("fit time         {fit_seconds:.2} s");
    }
    if let Some((periods, out)) = predict {
        let mut w = String::from("customer,p_alive,expected_purchases,expected_value\n");
        for r in &rows {
            let purchases = repeat.expected_purchases(&r.history, periods);
            let value = match (&gg, r.monetary) {
                (Some(g), Some(mean)) => {
                    let spend = Spend {
                        frequency: r.history.frequency,
                        mean_value: mean,
                    };
                    let per_purchase = if r.history.frequency > 0.0 {
                        g.model.expected_mean_value(&spend)
                    } else {
                        g.model.p * g.model.v / (g.model.q - 1.0)
                    };
                    format!("{:.4}", purchases * per_purchase)
                }
                _ => String::new(),
            };
            w.push_str(&format!(
                "{},{},{},{}\n",
                r.customer,
                repeat.probability_alive(&r.history),
                purchases,
                value
            ));
        }
        std::fs::write(&out, w).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
