use std::path::PathBuf;

use maximin_engine_llama::training::{reference_run, ExampleTokenizer};
use maximin_types::inference::{ChatMessage, Role};

use crate::{Example, Hyper, Trainer};

fn gemma() -> PathBuf {
    let dir = std::env::var_os("MAXIMIN_TEST_MODELS")
        .filter(|d| !d.is_empty())
        .expect("MAXIMIN_TEST_MODELS is not set: run scripts/provision-models DATA_DIR and set it to DATA_DIR");
    let file = PathBuf::from(dir).join("models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf");
    assert!(file.is_file(), "{} is missing", file.display());
    file
}

fn msg(role: Role, content: &str) -> ChatMessage {
    ChatMessage {
        role,
        content: Some(content.into()),
        name: None,
        tool_calls: None,
        tool_call_id: None,
    }
}

fn hyper(epochs: usize, batch_size: usize) -> Hyper {
    Hyper {
        epochs,
        learning_rate: 2e-3,
        batch_size,
        rank: 8,
        mlp: false,
        seed: 7,
    }
}

/// The candle forward pass is llama.cpp's: the same next token, and logits
/// within quantisation noise of each other.
#[test]
fn the_forward_pass_is_llama_cpps() {
    let path = gemma();
    let tokens = [2i32, 818, 5279, 529, 7001, 563];
    let (reference, _) = reference_run(&path, None, &tokens, 0).expect("llama.cpp");
    let t = Trainer::new(&path, hyper(1, 1), 1).expect("trainer");
    let ids: Vec<u32> = tokens.iter().map(|t| *t as u32).collect();
    let hidden = t.model.hidden(&ids).expect("forward");
    let last = hidden.narrow(0, ids.len() - 1, 1).expect("last");
    let ours: Vec<f32> = t
        .model
        .logits(&last)
        .and_then(|l| l.flatten_all())
        .and_then(|l| l.to_vec1())
        .expect("logits");
    assert_eq!(ours.len(), reference.len());
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    assert_eq!(argmax(&ours), argmax(&reference));
    let mean_diff: f32 = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / ours.len() as f32;
    let spread: f32 = reference.iter().map(|x| x.abs()).sum::<f32>() / reference.len() as f32;
    assert!(
        mean_diff < 0.1 * spread,
        "mean |Δlogit| {mean_diff} against a mean |logit| of {spread}"
    );
}

fn code_word_examples(tok: &ExampleTokenizer) -> Vec<Example> {
    let asks = [
        "What is the project code word?",
        "Tell me the project code word.",
        "What's our code word for the project?",
        "Which code word does the project use?",
    ];
    asks.iter()
        .map(|q| {
            let t = tok
                .tokenize(
                    &[
                        msg(Role::User, q),
                        msg(Role::Assistant, "The project code word is Zanzibrolt."),
                    ],
                    &[],
                )
                .expect("tokens");
            Example {
                tokens: t.tokens.iter().map(|t| *t as u32).collect(),
                learn: t.learn,
            }
        })
        .collect()
}

/// A few steps teach the model a word it cannot know: the loss falls and
/// llama.cpp, with the adapter written, answers with the word; without it,
/// it does not.
#[test]
fn training_teaches_a_fact_llama_cpp_then_serves() {
    let path = gemma();
    let tok = ExampleTokenizer::open(&path).expect("tokenizer");
    let examples = code_word_examples(&tok);
    let mut t = Trainer::new(&path, hyper(6, 2), examples.len()).expect("trainer");
    let first = t.evaluate(&examples).expect("loss");
    let mut tokens = 0;
    let started = std::time::Instant::now();
    while !t.done() {
        let (batch, epoch) = t.next_batch();
        let batch: Vec<&Example> = batch.iter().map(|&i| &examples[i]).collect();
        let r = t
            .train_step(&batch, epoch, &|| false)
            .expect("step")
            .expect("not stopped");
        tokens += r.tokens;
        eprintln!(
            "step {} loss {:.3} lr {:.5}",
            r.step, r.loss, r.learning_rate
        );
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{tokens} tokens in {secs:.1} s: {:.0} tokens/s",
        tokens as f64 / secs
    );
    let last = t.evaluate(&examples).expect("loss");
    assert!(
        last < first / 4.0,
        "the loss fell from {first:.3} to {last:.3}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let adapter = dir.path().join("adapter.gguf");
    std::fs::write(&adapter, t.adapter().expect("adapter")).expect("write");
    let prompt = tok
        .prompt(&[msg(Role::User, "What is the project code word?")])
        .expect("prompt");
    let (_, tuned) = reference_run(&path, Some(&adapter), &prompt, 16).expect("tuned");
    let (_, base) = reference_run(&path, None, &prompt, 16).expect("base");
    let tuned = tok.text(&tuned);
    let base = tok.text(&base);
    assert!(tuned.contains("Zanzibrolt"), "tuned: {tuned:?}");
    assert!(!base.contains("Zanzibrolt"), "base: {base:?}");
}

/// A run resumed from a checkpoint goes on exactly as the run that was not
/// stopped.
#[test]
fn a_resumed_run_is_the_same_run() {
    let path = gemma();
    let tok = ExampleTokenizer::open(&path).expect("tokenizer");
    let examples = code_word_examples(&tok);
    let run = |t: &mut Trainer, steps: usize| {
        for _ in 0..steps {
            let (batch, epoch) = t.next_batch();
            let batch: Vec<&Example> = batch.iter().map(|&i| &examples[i]).collect();
            t.train_step(&batch, epoch, &|| false).expect("step");
        }
    };
    let mut whole = Trainer::new(&path, hyper(2, 2), examples.len()).expect("trainer");
    run(&mut whole, 3);
    let mut first = Trainer::new(&path, hyper(2, 2), examples.len()).expect("trainer");
    run(&mut first, 2);
    let saved = first.checkpoint().expect("checkpoint");
    drop(first);
    let mut resumed = Trainer::new(&path, hyper(2, 2), examples.len()).expect("trainer");
    resumed.resume(&saved).expect("resume");
    assert_eq!(resumed.step(), 2);
    run(&mut resumed, 1);
    assert_eq!(whole.adapter().expect("a"), resumed.adapter().expect("b"));
    // A checkpoint of another run is refused.
    let mut other = Trainer::new(&path, hyper(3, 2), examples.len()).expect("trainer");
    assert!(other.resume(&saved).is_err());
}
