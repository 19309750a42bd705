#include "config/schema.hpp"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace drift::config {
namespace {

using S = ParamSpec;

SectionSchema plugin_section(std::string name, std::string selector, std::string doc,
                             std::vector<ParamSpec> keys) {
  SectionSchema s;
  s.name = std::move(name);
  s.doc = std::move(doc);
  s.is_plugin_section = true;
  s.selector = std::move(selector);
  s.keys = std::move(keys);
  return s;
}

SectionSchema plain_section(std::string name, std::string doc, std::vector<ParamSpec> keys,
                            bool grid_allowed = true) {
  SectionSchema s;
  s.name = std::move(name);
  s.doc = std::move(doc);
  s.keys = std::move(keys);
  s.grid_allowed = grid_allowed;
  return s;
}

std::vector<SectionSchema> build_schema() {
  std::vector<SectionSchema> out;
  out.push_back(plain_section(
      "experiment", "What the experiment is called, where its results go, and where it runs.",
      {S::String("name", "",
                 "Name of the experiment; empty: the experiment file's name without its "
                 "extension."),
       S::Int("seed", 0,
              "Seed of every random draw (initialisation, data, noise, queues); a grid over "
              "`experiment.seed` repeats an experiment with several seeds.")
           .at_least(0),
       S::String("output", "",
                 "Results file (HDF5); empty: `results/<name>.h5`. A relative path is "
                 "relative to the current directory, not to the experiment file."),
       S::String("device", "cpu",
                 "Where tensors live: `cpu`, `cuda`, or `auto` (cuda when available, else "
                 "cpu; decided when the run starts).")
           .one_of({"cpu", "cuda", "auto"}),
       S::Int("threads", 0, "CPU threads for LibTorch; 0: all cores (or DRIFT_NUM_THREADS).")
           .at_least(0)}));
  out.push_back(plain_section(
      "plugins",
      "Extra plugin files to load before the experiment is checked, besides the default ones "
      "(installed beside `drift-run` and listed in `DRIFT_PLUGIN_PATH`). This section cannot "
      "be overridden by [grid].",
      {S::StringList("paths", {},
                     "Plugin files (`.so`) or directories (every `.so` in it, not recursive), "
                     "relative to the experiment file's directory.")},
      /*grid_allowed=*/false));
  out.push_back(plugin_section(
      "data", "dataset",
      "The training data: a registry component of kind dataset, plus that dataset's "
      "parameters.",
      {S::Required("dataset", ParamType::String,
                   "Name of the dataset component (`drift-run --list-plugins` lists them).")}));
  out.push_back(plugin_section(
      "generator", "plugin",
      "The generator network (docs/method.md §7), plus that generator's parameters.",
      {S::Required("plugin", ParamType::String, "Name of the generator component.")}));
  out.push_back(plugin_section(
      "encoder", "plugin",
      "The feature encoder whose features the drift field is computed on (docs/method.md §4), "
      "plus that encoder's parameters.",
      {S::String("plugin", "identity",
                 "Name of the encoder component; `identity` computes the field on the raw "
                 "samples.")}));
  out.push_back(plugin_section(
      "kernel", "plugin",
      "The kernel of the drift field (docs/method.md §2), plus that kernel's parameters. The "
      "temperatures are a framework key: every kernel computes all of them in one call and "
      "the normalizer combines them.",
      {S::String("plugin", "laplace", "Name of the kernel component."),
       S::FloatList("temperatures", {0.02, 0.05, 0.2},
                    "Kernel temperatures; the field is computed for each and combined.")
           .positive()
           .non_empty(),
       S::String("temperature_schedule", "constant",
                 "How the temperatures change over training: `constant`, or `exponential` "
                 "annealing tau_k(t) = max(tau_k * exp(-temperature_decay * (t - 1)), "
                 "temperature_min) at step t (bandwidth annealing, arXiv 2603.09936). The "
                 "`m_tau_<tau>` columns keep the names of the initial temperatures; the "
                 "`tau_<k>` columns of `train` hold the values used at each step.")
           .one_of({"constant", "exponential"}),
       S::Float("temperature_decay", 0.0,
                "Rate r per step of the `exponential` schedule (e.g. 1e-3 shrinks tau by e "
                "every 1000 steps).")
           .non_negative(),
       S::Float("temperature_min", 0.0,
                "Floor of every annealed temperature (`exponential` schedule); 0: none.")
           .non_negative()}));
  out.push_back(plugin_section(
      "normalizer", "plugin",
      "How features and drifts are normalised and the per-temperature drifts combined (docs/method.md "
      "§2), plus that normalizer's parameters.",
      {S::String("plugin", "feature_drift", "Name of the normalizer component.")}));
  out.push_back(plugin_section(
      "formation", "plugin",
      "How the drift problems of a batch conditioned on observations are formed (datasets with "
      "conditions, such as `demonstrations`; docs/guide/policy.md): which positives each "
      "observation's generated samples are drifted towards. Ignored, and left out of the "
      "resolved configuration when not written, for other datasets.",
      {S::String("plugin", "knn", "Name of the formation component.")}));
  out.push_back(plain_section(
      "train", "The training loop: batch sizes, optimiser, guidance, queues (docs/method.md §5-§7).",
      {S::Int("steps", 2000, "Optimiser steps.").at_least(1),
       S::Int("n_classes", 0,
              "Class labels drawn per step (N_c). 0: unconditional, the data's labels are "
              "ignored and all data is one class (one label per step, no guidance). It must "
              "not exceed the dataset's number of classes.")
           .at_least(0),
       S::Int("n_gen", 256, "Generated samples per class label and step (Cg = N_neg).")
           .at_least(1),
       S::Int("n_pos", 256, "Real samples (positives) of that class per label and step (N_pos).")
           .at_least(1),
       S::Int("n_unc", 0,
              "Real samples of random classes per label and step, used as weighted negatives "
              "for classifier-free guidance (N_unc); 0: no guidance.")
           .at_least(0),
       S::Int("n_cond", 0,
              "Datasets with conditions (`demonstrations`): observations per step, each a group "
              "of `n_gen` generated samples whose positives the [formation] component chooses "
              "(docs/guide/policy.md). Required (> 0) with such a dataset, ignored otherwise.")
           .at_least(0),
       S::Float("lr", 1e-3, "AdamW learning rate (peak, after warmup).").positive(),
       S::String("lr_schedule", "constant",
                 "Learning rate after warmup: `constant`, or `cosine` decay to 0 at `steps`.")
           .one_of({"constant", "cosine"}),
       S::Int("warmup", 100, "Steps of linear learning-rate warmup from 0; 0: none.").at_least(0),
       S::Float("weight_decay", 0.01, "AdamW decoupled weight decay.").non_negative(),
       S::Float("beta1", 0.9, "AdamW beta1.").at_least(0).below(1),
       S::Float("beta2", 0.95, "AdamW beta2.").at_least(0).below(1),
       S::Float("grad_clip", 2.0, "Clip the gradient's global norm to this; 0: no clipping.")
           .non_negative(),
       S::Float("runaway_factor", 1000.0,
                "A cell whose generated training samples drift further from the real data than "
                "this many times the data's own spread (RMS distance from the positives' mean, "
                "in sample space) is stopped and recorded as `diverged`: a runaway with finite "
                "loss. 0: no check.")
           .non_negative(),
       S::Float("ema", 0.999,
                "Decay of the exponential moving average of the weights used for evaluation; "
                "0: evaluate the raw weights.")
           .at_least(0)
           .below(1),
       S::Float("ema_warmup", 10.0,
                "Warm-up of every weight average ([train] ema, [eval] ema_rates): the decay at "
                "step t is min(rate, (1 + t) / (ema_warmup + t)), so early averages are not "
                "dominated by the initial weights. The cap also limits an average to about "
                "t / (ema_warmup - 1) steps: with the default 10, a rate of 0.999 (1000 steps) "
                "is reached only after step 8990. 2: the cap is the running mean of all weights "
                "so far; 1: no warm-up.")
           .at_least(1),
       S::Int("eval_every", 500, "Evaluate every this many steps; 0: only after the last step.")
           .at_least(0),
       S::Int("log_every", 1, "Record the loss and drift statistics every this many steps.")
           .at_least(1),
       S::Int("sample_every", 0,
              "Store generated samples in the results file every this many steps (and at step "
              "0); 0: at every evaluation (`eval_every`) and after the last step.")
           .at_least(0),
       S::Int("queue_len", 128, "Length of each per-class FIFO queue of real samples.")
           .at_least(1),
       S::Int("global_queue_len", 1000,
              "Length of the global FIFO queue of real samples (the unconditional negatives).")
           .at_least(1),
       S::Int("queue_push", 64, "Newest real samples pushed into the queues every step.")
           .at_least(1),
       S::Float("cfg_alpha_min", 1.0, "Smallest guidance scale alpha drawn in training.")
           .at_least(1),
       S::Float("cfg_alpha_max", 4.0,
                "Largest guidance scale alpha drawn in training; at least `cfg_alpha_min`.")
           .at_least(1),
       S::Float("cfg_alpha_power", 3.0,
                "Exponent k of the alpha density p(alpha) ~ alpha^-k on [min, max].")
           .non_negative(),
       S::Float("cfg_p_alpha1", 0.0, "Probability of using alpha = 1 (no guidance) for a label.")
           .in_range(0, 1),
       S::String("autocast", "off",
                 "`bf16`: the training step's generator and encoder forward passes run under "
                 "bfloat16 autocast on the device that trains (CUDA, or the CPU: faster where it "
                 "has AVX512_BF16 or AMX, emulated and slower elsewhere); the drift field stays "
                 "float32 (features are cast to float before the kernel) and evaluation runs in "
                 "float32. `off`: float32 throughout.")
           .one_of({"off", "bf16"}),
       S::Int("nproc", 1,
              "Ranks that train the cell data-parallel (c10d: Gloo on the CPU, NCCL on CUDA; "
              "docs/guide/distributed.md). Each rank generates and encodes an equal share of every "
              "class's `n_gen` generated samples and `n_pos` positives (both must be divisible "
              "by `nproc`); features are all-gathered, so the drift field and everything it "
              "computes over the batch is the one-process field, and gradients are "
              "all-reduced. Locally `drift-run` starts the ranks; under Slurm, `srun` does.")
           .at_least(1),
       S::Bool("profile", false,
               "Time each phase of every training step and log it in the `train` table as "
               "`t_data`, `t_generate`, `t_encode_gen`, `t_encode_real` (positives and "
               "negatives), `t_comm` (all-gathers and the gradient all-reduce of `nproc` > 1), "
               "`t_field` (drift field and loss), `t_backward_encoder`, `t_backward_generator`, "
               "`t_optimizer` (clipping, AdamW, EMA), in seconds (CPU: wall time of each phase; "
               "CUDA: not synchronised, so only `seconds` is exact). The backward pass then runs "
               "in two parts (to the samples, then into the generator): the same gradients."),
       S::String("feature_cache", "off",
                 "`float16` or `float32`: the encoder's features of every real image of the "
                 "training split are computed once per (encoder weights, feature configuration, "
                 "data, dtype) and kept in `feature_cache_dir` (`<encoder>-<hash>.h5`, built by "
                 "the first cell that needs it, loaded by the others); positives and real "
                 "negatives are then looked up instead of encoded (`t_encode_real` times the "
                 "lookup), so a step can afford many positives. A stale, truncated or corrupt "
                 "file is rebuilt. The table stays in memory (float16: 2 bytes per value, about "
                 "1.1 GB for the 50k `fit` images with maps s2, s3 of the default ResNet). Needs "
                 "a finite dataset (`fashion_mnist`, `images`). `off`: every step encodes its "
                 "real samples.")
           .one_of({"off", "float16", "float32"}),
       S::String("feature_cache_dir", "results/features",
                 "Directory of the feature cache files; a relative path is relative to the "
                 "current directory (like `output`)."),
       S::Float("dist_timeout_s", 300.0,
                "With `nproc` > 1: a rank that waits this long for another at a collective "
                "fails the cell, naming the rank that did not arrive.")
           .positive(),
       S::Int("checkpoint_every", 0,
              "Write the cell's checkpoint (`<cells>/<id>.ckpt`: weights, EMA, optimizer, every "
              "random stream, queues, logs so far) every this many steps; 0: not by steps. A "
              "cell stopped by SIGTERM or Ctrl-C writes one after its current step in any case, "
              "and `drift-run` resumes every cell from its checkpoint (`--restart` ignores "
              "them). Not part of the cell's configuration: changing it reruns nothing.")
           .at_least(0),
       S::Float("checkpoint_minutes", 10.0,
                "Also write it when this many minutes of wall time passed since the last one; 0: "
                "not by time. Not part of the cell's configuration.")
           .non_negative(),
       S::Bool("keep_checkpoint", false,
               "Keep the checkpoint (and the one before it, `.ckpt.prev`) when the cell "
               "finishes; by default they are removed. Not part of the cell's configuration.")}));
  out.back().operational_keys = {"checkpoint_every", "checkpoint_minutes", "keep_checkpoint"};
  out.push_back(plain_section(
      "eval", "Evaluation of the generator against held-out data.",
      {S::StringList("metrics", {"mmd", "energy", "sliced_w"},
                     "Metrics to compute, each with its floor (the same metric of real data). "
                     "Vector samples: `mmd` (kernel MMD), `energy` (energy distance), "
                     "`sliced_w` (sliced Wasserstein), `mode_share` (share of samples per "
                     "known mode, for datasets that declare modes). [1, 32, 32] images, under "
                     "the fixed Fashion-MNIST evaluator against its test split "
                     "(docs/guide/evaluator.md): `fid` (Fréchet distance of evaluator features), "
                     "`precision`, `recall` (k-NN manifolds), `accuracy` (per-class accuracy of "
                     "class-conditional samples), `is` (Inception-Score analogue). Metrics "
                     "that do not apply to the samples are skipped.")
           .one_of({"mmd", "energy", "sliced_w", "mode_share", "fid", "precision", "recall",
                    "accuracy", "is"}),
       S::FloatList("cfg_alphas", {},
                    "Class-conditional runs: guidance values alpha at which every evaluation "
                    "is repeated without retraining (paper Fig. 5): eval columns "
                    "`<metric>/alpha_<a>`, and the last step's samples in `alpha_samples/<a>/` "
                    "(schemas/results.md). Empty: the default alpha = 1 only.")
           .positive(),
       S::FloatList("ema_rates", {},
                    "Further EMA decays kept beside `[train] ema` (the same warm-up) and "
                    "evaluated at every evaluation, at the default alpha, as eval columns "
                    "`<metric>/ema_<rate>`, and the last step's samples in `ema_samples/<rate>/` "
                    "(`drift-eval --ema`): EMA lengths compared on one training run, without "
                    "seed noise. Training, the default samples and exported weights use `[train] ema`.")
           .above(0)
           .below(1),
       S::String("reference", "test",
                 "What image metrics compare with: `test`, the Fashion-MNIST test split (report "
                 "numbers), or `validation`, the last 10k training images, held out: the cell then "
                 "trains on the first 50k only (`fit`). Select recipes on `validation`; report "
                 "`test` once.")
           .one_of({"test", "validation"}),
       S::Int("knn_k", 3, "k of the k-NN manifolds of `precision` and `recall`.").at_least(1),
       S::Int("rollouts", 100,
              "Policies (`demonstrations` of a known task): closed-loop episodes per evaluation, "
              "giving eval columns `success`, `mode_<name>`, `mode_undecided` (shares of "
              "episodes) and `ms_per_call` (docs/guide/policy.md). 0: none.")
           .at_least(0),
       S::Int("rollout_seed", 1000000,
              "Episode i of every evaluation runs the task from seed `rollout_seed + i` (away "
              "from the demonstrations' seeds).")
           .at_least(0),
       S::Int("action_horizon", 8,
              "Actions of each predicted chunk executed before the policy is asked again (Ta, "
              "at most the dataset's `pred_horizon`).")
           .at_least(1),
       S::Int("n_samples", 2048, "Generated and real samples per evaluation.").at_least(1),
       S::StringList("features", {},
                     "Encoder features to store at each evaluation (names as in the `m_tau_<tau>/"
                     "<feature>` columns, e.g. `raw`, `s1.mean`, `s2.p2.std`): those of "
                     "`feature_samples` generated and real samples, and their drift norm per "
                     "temperature, under `features/<name>/<step>` (schemas/results.md). A name "
                     "the encoder does not yield fails the cell before training."),
       S::Int("feature_samples", 64,
              "Generated and real samples whose `features` are stored (at most `n_samples`).")
           .at_least(1)}));
  {
    SectionSchema slurm = plain_section(
        "slurm",
        "How `drift-run --slurm FILE` submits the cells to a Slurm cluster: one job array, one "
        "task per cell, plus a merge job that depends on it (docs/guide/running.md §6). "
        "The command line overrides these keys (`--partition`, `--time`, `--cpus-per-task`, "
        "`--gpus-per-task`, `--mem`, `--max-running`, `--sbatch-option`). Not part of a cell's "
        "configuration: changing it reruns nothing.",
        {S::String("partition", "", "Partition of the array and merge jobs; empty: the cluster's default."),
         S::String("time", "",
                   "Time limit of one array task (`sbatch --time`, e.g. `2:00:00`); empty: the "
                   "partition's default."),
         S::Int("cpus_per_task", 0,
                "CPUs of one rank of a cell (`--cpus-per-task`); LibTorch runs that many threads. "
                "0: `[experiment] threads`, or 1 where that is 0.")
             .at_least(0),
         S::Int("gpus_per_task", 0, "GPUs of one rank of a cell (`--gpus-per-task`).").at_least(0),
         S::String("mem", "", "Memory of one array task (`--mem`, e.g. `8G`); empty: the default."),
         S::Int("max_running", 0,
                "At most this many array tasks at once (`--array=...%N`); 0: no limit.")
             .at_least(0),
         S::StringList("sbatch_options", {},
                       "Further `sbatch` options for the array job, one per entry (e.g. "
                       "`--account=lab`, `--qos=long`)."),
         S::String("merge_time", "10:00", "Time limit of the merge job.")},
        /*grid_allowed=*/false);
    slurm.in_cell_config = false;
    out.push_back(std::move(slurm));
  }
  return out;
}

std::string cell(std::string s) {
  return absl::StrReplaceAll(s, {{"|", "\\|"}, {"\n", " "}});
}

}  // namespace

const std::vector<SectionSchema>& experiment_schema() {
  static const auto* schema = new std::vector<SectionSchema>(build_schema());
  return *schema;
}

bool SectionSchema::is_operational(const std::string& key) const {
  return std::find(operational_keys.begin(), operational_keys.end(), key) != operational_keys.end();
}

const SectionSchema* find_section(const std::string& name) {
  for (const auto& s : experiment_schema())
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string> section_names() {
  std::vector<std::string> out;
  for (const auto& s : experiment_schema()) out.push_back(s.name);
  out.push_back("grid");
  return out;
}

std::string schema_markdown() {
  std::string out =
      "Generated from the framework's declarations (`drift-run --print-schema`); do not edit "
      "by hand.\n";
  for (const auto& s : experiment_schema()) {
    absl::StrAppend(&out, "\n### [", s.name, "]\n\n", s.doc, "\n");
    if (s.is_plugin_section)
      absl::StrAppend(&out, "\nBesides the keys below, [", s.name,
                      "] takes the parameters of the selected ",
                      s.name == "data" ? "dataset" : s.name, " (`", s.selector,
                      " = ...`); `drift-run --list-plugins` lists them.\n");
    if (!s.grid_allowed) absl::StrAppend(&out, "\nNot allowed in [grid].\n");
    absl::StrAppend(&out, "\n| key | type | default | allowed | description |\n",
                    "|---|---|---|---|---|\n");
    for (const auto& k : s.keys) {
      std::string def = k.default_value ? "`" + format_param_value(*k.default_value) + "`"
                                        : std::string("required");
      absl::StrAppend(&out, "| `", k.name, "` | ", param_type_name(k.type), " | ", cell(def),
                      " | ", cell(k.describe_allowed()), " | ", cell(k.doc), " |\n");
    }
  }
  return out;
}

}  // namespace drift::config
