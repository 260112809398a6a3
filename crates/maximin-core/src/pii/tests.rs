use maximin_types::inference::{ChatCompletionRequest, ChatMessage, FunctionCall, Role, ToolCall};
use maximin_types::ErrorCode;

use super::*;

/// What `detect` finds, as (category, matched text).
fn found(text: &str) -> Vec<(Category, &str)> {
    detect(text)
        .into_iter()
        .map(|f| (f.category, &text[f.start..f.end]))
        .collect()
}

/// Each positive is found whole, alone, in a sentence; each negative yields
/// nothing of `cat`.
fn check(cat: Category, positives: &[&str], negatives: &[&str]) {
    for p in positives {
        let text = format!("see {p}, thanks");
        assert_eq!(found(&text), vec![(cat, *p)], "positive {p:?}");
        assert_eq!(found(p), vec![(cat, *p)], "positive alone {p:?}");
    }
    for n in negatives {
        let got = found(n);
        assert!(
            got.iter().all(|(c, _)| *c != cat),
            "negative {n:?} gave {got:?}"
        );
    }
}

#[test]
fn emails() {
    check(
        Category::Email,
        &[
            "jane@example.com",
            "john.doe+tag@mail.example.co.uk",
            "o'brien_1%x@sub-domain.example.org",
            "jörg.müller@example.de",
        ],
        &[
            "a@b",
            "@handle",
            "follow @maximin on the site",
            "user@localhost",
            "x@y.c",
            "x@1.2",
            "a@-b.com",
            "foo@.com",
            "@@",
            "no at sign here.com",
        ],
    );
    // Sentence punctuation and quotes stay outside; a leading dot is not the
    // address's.
    assert_eq!(
        found("Mail <jane@example.com>. Or \"bob@example.org\"... ...x@example.net. 'o'neil@example.com'"),
        vec![
            (Category::Email, "jane@example.com"),
            (Category::Email, "bob@example.org"),
            (Category::Email, "x@example.net"),
            (Category::Email, "o'neil@example.com"),
        ]
    );
    // CJK text around an address is not swallowed.
    assert_eq!(
        found("请联系jane@example.com。"),
        vec![(Category::Email, "jane@example.com")]
    );
}

#[test]
fn phones() {
    check(
        Category::Phone,
        &[
            "+1 (415) 555-0132",
            "+44 20 7946 0958",
            "+49-30-1234567",
            "+33.1.23.45.67.89",
            "+14155550132",
            "(415) 555-0132",
            "(415)555-0132",
            "415-555-0132",
            "415.555.0132",
            "415 555 0132",
            "1-800-555-0199",
        ],
        &[
            "2026",
            "in 1999 and 2026",
            "2026-12-06",
            "06.12.2026",
            "1.2.3",
            "version 10.2.3.4.5",
            "555-0132",
            "+1 234",
            "+1234567",
            "123-456-7890",
            "415-555-01329",
            "415-555-0132-7",
            "4155-550-132",
            "415-555.0132",
            "call 12345",
            "2+12345678",
            "12:30",
            "+1234567890123456",
        ],
    );
    // Cards and IBANs are not read as phone numbers.
    assert_eq!(
        found("4111 1111 1111 1111"),
        vec![(Category::Card, "4111 1111 1111 1111")]
    );
    assert_eq!(
        found("+4111111111111111"),
        vec![(Category::Card, "4111111111111111")]
    );
}

#[test]
fn cards() {
    check(
        Category::Card,
        &[
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "30569309025904",
            "4242 4242 4242 4242",
        ],
        &[
            "4111 1111 1111 1112",
            "4111111111111112",
            "0000000000000000",
            "411111111111",
            "41111111111111111111111",
            "4111 1111-1111 1111",
            "41 11 11 11 11 11 11 11",
            "3.4111111111111111",
            "4111111111111111.5",
            "A4111111111111111",
            "4111111111111111x",
        ],
    );
    // A card inside a longer run of groups is still found, group-aligned.
    assert_eq!(
        found("no 12 4111 1111 1111 1111 2026"),
        vec![(Category::Card, "4111 1111 1111 1111")]
    );
}

#[test]
fn ibans() {
    check(
        Category::Iban,
        &[
            "DE89 3704 0044 0532 0130 00",
            "DE89370400440532013000",
            "GB82 WEST 1234 5698 7654 32",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NL91ABNA0417164300",
            "NO9386011117947",
            "de89370400440532013000",
        ],
        &[
            "DE89 3704 0044 0532 0130 01",
            "DE88370400440532013000",
            "GB82 WEST 1234 5698 7654 33",
            "DE89 3704",
            "XDE89370400440532013000",
            "DE8937040044053201300012345678901234567",
            "AB12 is not an account",
        ],
    );
    // Trailing words are not taken for groups.
    assert_eq!(
        found("IBAN DE89 3704 0044 0532 0130 00 ABCD please"),
        vec![(Category::Iban, "DE89 3704 0044 0532 0130 00")]
    );
}

#[test]
fn ssns() {
    check(
        Category::Ssn,
        &["123-45-6789", "078-05-1120", "899-99-9999"],
        &[
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "999-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123-45-67890",
            "1123-45-6789",
            "1-123-45-6789",
            "123-45-6789-1",
            "123 45 6789",
            "12-345-6789",
        ],
    );
}

#[test]
fn ip_addresses() {
    check(
        Category::IpAddress,
        &[
            "192.168.1.1",
            "10.0.0.255",
            "8.8.8.8",
            "0.0.0.0",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8::1",
            "::1",
            "fe80::1ff:fe23:4567:890a",
            "::ffff:192.0.2.128",
        ],
        &[
            "999.1.1.1",
            "256.1.1.1",
            "1.2.3.4.5",
            "version 1.2.3",
            "v1.2.3.4",
            "1.2.3.0004",
            "12:30",
            "12:30:45",
            "at 12:30:45.123",
            "std::io::Result",
            "a::b",
            "dead::beef",
            "00:1A:2B:3C:4D:5E",
            "2001:db8::1::2",
            "2001:db8::1g",
        ],
    );
    assert_eq!(
        found("host 10.0.0.1:8080, net 10.1.0.0/16, [2001:db8::2]:443, fe80::1%eth0."),
        vec![
            (Category::IpAddress, "10.0.0.1"),
            (Category::IpAddress, "10.1.0.0"),
            (Category::IpAddress, "2001:db8::2"),
            (Category::IpAddress, "fe80::1"),
        ]
    );
}

#[test]
fn secrets() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    check(
        Category::Secret,
        &[
            "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv",
            "sk-ant-api03-Xy7zAb3dEf6hIj9kLm2nOp5q",
            "mmx_live_Ab3dEf6hIj9kLm2nOp5qRs8tUvWx1yZ0aB2cD4eF6gH8",
            "mmx_test_Ab3dEf6hIj9kLm2nOp5qRs8t",
            "ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUvWx1yZ0aB2c",
            "github_pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz",
            "xoxb-1234567890-abcdefghij",
            "AKIAIOSFODNN7EXAMPLE",
            "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            jwt,
            "k8Jd92LmQp3Zx7Vb1Nc4Rt6Yh0Gf5Ws2",
            "d41d8cd98f00b204e9800998ecf8427e",
            "550e8400-e29b-41d4-a716-446655440000",
            "9vX2/kLp4Qz+Rt7Wm1Bn5Yc8Hd3Jf6Gs0Ae2Uo4Ik",
        ],
        &[
            "sk-learn",
            "sk-learn-is-a-python-library-for-ml",
            "risk-Ab3dEf6hIj9kLm2nOp5qRs8tUv",
            "mmx_live_AbCd",
            "AKIA",
            "AKIAIOSFODNN7EXAMPLE1",
            "ghp_short1",
            "Bearer tokens are used for authentication",
            "use a Bearer token",
            "Basic authentication",
            "supercalifragilisticexpialidocious_and_more_words",
            "test_user_authentication_handler_v2",
            "getUserAuthenticationHandlerV2Factory",
            "CONSTANT_NAME_WITH_VERSION_2_AND_MORE",
            "src/main/java/com/example/project2/Application",
            "/usr/local/lib/python3/site-packages/numpy",
            "eyJhbGciOiJIUzI1NiJ9",
            "internationalization",
        ],
    );
    // Only the credential after the scheme is taken.
    assert_eq!(
        found("Authorization: Bearer abc123def456ghi789."),
        vec![(Category::Secret, "abc123def456ghi789")]
    );
    assert_eq!(
        found("curl -H 'authorization: bearer mF_9.B5f-4.1JqM' x"),
        vec![(Category::Secret, "mF_9.B5f-4.1JqM")]
    );
    assert_eq!(
        found("Authorization: Basic dXNlcjpwYXNzd29yZDE="),
        vec![(Category::Secret, "dXNlcjpwYXNzd29yZDE=")]
    );
    assert_eq!(
        found(&format!("Bearer {jwt}")),
        vec![(Category::Secret, jwt)]
    );
    // The longest match wins; an address inside a token is not split out.
    assert_eq!(
        found("key=aB3dEf6hIj9kLm2nOp5qRs8tUvWx1yZ0== end"),
        vec![(Category::Secret, "aB3dEf6hIj9kLm2nOp5qRs8tUvWx1yZ0==")]
    );
}

#[test]
fn findings_in_mixed_text_are_sorted_and_typed() {
    let text = "Jane (jane@example.com, +1 415 555 0132) paid with 4111 1111 1111 1111 \
                from DE89 3704 0044 0532 0130 00; SSN 123-45-6789; host 192.168.0.10; \
                key sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv.";
    let cats: Vec<Category> = found(text).into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        cats,
        [
            Category::Email,
            Category::Phone,
            Category::Card,
            Category::Iban,
            Category::Ssn,
            Category::IpAddress,
            Category::Secret
        ]
    );
}

#[test]
fn modes_and_categories_have_their_wire_names() {
    for m in [PiiMode::Off, PiiMode::Redact, PiiMode::Block] {
        assert_eq!(m.as_str().parse::<PiiMode>(), Ok(m));
        assert_eq!(
            serde_json::to_value(m).expect("serializes"),
            serde_json::json!(m.as_str())
        );
    }
    assert_eq!(PiiMode::default(), PiiMode::Off);
    let err = "Redact".parse::<PiiMode>().expect_err("case matters");
    assert_eq!(
        err.to_string(),
        "unknown PII mode 'Redact': expected one of off, redact, block"
    );
    let tags: Vec<&str> = Category::ALL.iter().map(|c| c.tag()).collect();
    assert_eq!(
        tags,
        ["EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "SECRET"]
    );
    let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "email",
            "phone",
            "card",
            "iban",
            "ssn",
            "ip_address",
            "secret"
        ]
    );
}

#[test]
fn redaction_numbers_per_category_and_reuses_placeholders() {
    let mut r = Redactor::new();
    let a = r.redact("Write to a@example.com or b@example.com, card 4111111111111111.");
    assert_eq!(a, "Write to [EMAIL_1] or [EMAIL_2], card [CARD_1].");
    let b = r.redact("Again: b@example.com, and c@example.com.");
    assert_eq!(b, "Again: [EMAIL_2], and [EMAIL_3].");
    assert!(!r.is_empty());
    assert_eq!(
        r.restore("Sent [EMAIL_2] a copy, charged [CARD_1]; [EMAIL_9] and [x] stay."),
        "Sent b@example.com a copy, charged 4111111111111111; [EMAIL_9] and [x] stay."
    );
    // A model that echoes the tag in another case is understood.
    assert_eq!(r.restore("[email_1]"), "a@example.com");
    let mut none = Redactor::new();
    assert_eq!(none.redact("nothing here"), "nothing here");
    assert!(none.is_empty());
    assert_eq!(none.restore("[EMAIL_1]"), "[EMAIL_1]");
}

#[test]
fn literal_placeholders_in_the_input_are_never_issued() {
    let mut texts = vec![
        "My mail is a@example.com".to_owned(),
        "the template says [EMAIL_1] and [email_2]".to_owned(),
    ];
    let r = protect_texts(&mut texts, "input", PiiMode::Redact)
        .expect("redact never refuses")
        .expect("something was redacted");
    assert_eq!(texts[0], "My mail is [EMAIL_3]");
    assert_eq!(texts[1], "the template says [EMAIL_1] and [email_2]");
    assert_eq!(
        r.restore("[EMAIL_1], [EMAIL_2], [EMAIL_3]"),
        "[EMAIL_1], [EMAIL_2], a@example.com"
    );
}

#[test]
fn literal_placeholders_escaped_in_arguments_are_never_issued() {
    let args = r#"{"t": "\u005bEMAIL_1] a@example.com"}"#;
    let mut req = chat(vec![msg(Role::Assistant, None, &[args])]);
    let r = protect_chat(&mut req, PiiMode::Redact)
        .expect("redact never refuses")
        .expect("something was redacted");
    let calls = req.messages[0].tool_calls.as_ref().expect("calls kept");
    assert_eq!(
        calls[0].function.arguments,
        r#"{"t": "[EMAIL_1] [EMAIL_2]"}"#
    );
    assert_eq!(r.restore("[EMAIL_1] [EMAIL_2]"), "[EMAIL_1] a@example.com");
}

#[test]
fn stream_restoring_equals_whole_restoring_at_every_cut() {
    let mut r = Redactor::new();
    r.redact("a@example.com b@example.com 4111111111111111 10.0.0.1");
    let answer = "Hi [EMAIL_1]! [[EMAIL_2]] [CARD_1][IP_1] [EMAIL_12] [EMAIL_ [x] \
                  [EMAIL_1 [CARD_1]é中😀[ip_1] [SECRET_1] [";
    let whole = r.restore(answer);
    assert!(whole.starts_with("Hi a@example.com! [b@example.com] 4111111111111111"));
    let cuts: Vec<usize> = answer
        .char_indices()
        .map(|(i, _)| i)
        .chain([answer.len()])
        .collect();
    for &c in &cuts {
        let mut s = r.restorer();
        let mut out = s.push(&answer[..c]);
        out += &s.push(&answer[c..]);
        out += &s.finish();
        assert_eq!(out, whole, "cut at {c}");
    }
    for &c1 in &cuts {
        for &c2 in cuts.iter().filter(|&&c2| c2 >= c1) {
            let mut s = r.restorer();
            let out = [
                s.push(&answer[..c1]),
                s.push(&answer[c1..c2]),
                s.push(&answer[c2..]),
                s.finish(),
            ]
            .concat();
            assert_eq!(out, whole, "cuts at {c1} and {c2}");
        }
    }
    // One character at a time.
    let mut s = r.restorer();
    let mut out = String::new();
    for ch in answer.chars() {
        out += &s.push(ch.encode_utf8(&mut [0; 4]));
    }
    out += &s.finish();
    assert_eq!(out, whole);
}

#[test]
fn stream_restorer_holds_back_at_most_a_placeholder() {
    let mut r = Redactor::new();
    r.redact("a@example.com");
    let mut s = r.restorer();
    assert_eq!(s.push("Hello [EMA"), "Hello ");
    assert_eq!(s.push("IL_1] and [EMAIL_1"), "a@example.com and ");
    // Longer than any placeholder issued: released.
    assert_eq!(s.push("0"), "[EMAIL_10");
    // Not a tag, or not a tag's shape: released at once.
    assert_eq!(s.push("[EMAILS"), "[EMAILS");
    assert_eq!(s.push("[PHX"), "[PHX");
    assert_eq!(s.push("[CA"), "");
    assert_eq!(s.push("RD_"), "");
    assert_eq!(s.push("x"), "[CARD_x");
    assert_eq!(s.push("[ no"), "[ no");
    assert_eq!(s.push("["), "");
    assert_eq!(s.finish(), "[");
    // With nothing issued nothing is held.
    let mut s = Redactor::new().restorer();
    assert_eq!(s.push("[EMA"), "[EMA");
}

fn chat(messages: Vec<ChatMessage>) -> ChatCompletionRequest {
    serde_json::from_value(serde_json::json!({"model": "m", "messages": []}))
        .map(|mut r: ChatCompletionRequest| {
            r.messages = messages;
            r
        })
        .expect("a minimal request parses")
}

fn msg(role: Role, content: Option<&str>, args: &[&str]) -> ChatMessage {
    ChatMessage {
        role,
        content: content.map(str::to_owned),
        name: None,
        tool_calls: (!args.is_empty()).then(|| {
            args.iter()
                .enumerate()
                .map(|(i, a)| ToolCall {
                    id: format!("call_{i}"),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: "lookup".into(),
                        arguments: (*a).to_owned(),
                    },
                })
                .collect()
        }),
        tool_call_id: None,
    }
}

fn sample_chat() -> ChatCompletionRequest {
    chat(vec![
        msg(Role::System, Some("You are helpful."), &[]),
        msg(
            Role::Assistant,
            None,
            &[
                r#"{"city": "Paris"}"#,
                "{\"note\": \"line\\nbob@example.com\", \"card\": 4111111111111111}",
            ],
        ),
        msg(Role::Tool, Some("Found bob@example.com, ip 10.0.0.1"), &[]),
        msg(Role::User, Some("Mail bob@example.com please"), &[]),
    ])
}

#[test]
fn protect_chat_off_leaves_the_request_alone() {
    let mut req = sample_chat();
    let before = req.clone();
    assert!(protect_chat(&mut req, PiiMode::Off)
        .expect("off never refuses")
        .is_none());
    assert_eq!(req, before);
}

#[test]
fn protect_chat_block_names_the_first_field_and_category() {
    let mut req = sample_chat();
    let before = req.clone();
    let err = protect_chat(&mut req, PiiMode::Block).expect_err("blocked");
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(
        err.details["field"],
        "messages[1].tool_calls[1].function.arguments"
    );
    assert_eq!(err.details["category"], "email");
    assert!(err.message.contains("an e-mail address"), "{}", err.message);
    assert!(!err.message.contains("bob"), "{}", err.message);
    assert_eq!(req, before);

    let mut req = chat(vec![
        msg(Role::User, Some("hi"), &[]),
        msg(Role::Assistant, Some("hello"), &[]),
        msg(Role::User, Some("my card is 4111 1111 1111 1111"), &[]),
    ]);
    let err = protect_chat(&mut req, PiiMode::Block).expect_err("blocked");
    assert_eq!(err.details["field"], "messages[2].content");
    assert_eq!(err.details["category"], "card");

    let mut clean = chat(vec![msg(
        Role::User,
        Some("What is 2+2?"),
        &[r#"{"a": 1}"#],
    )]);
    assert!(protect_chat(&mut clean, PiiMode::Block)
        .expect("nothing to block")
        .is_none());
}

#[test]
fn protect_chat_redacts_content_and_arguments_and_restores_the_answer() {
    let mut req = sample_chat();
    let r = protect_chat(&mut req, PiiMode::Redact)
        .expect("redact never refuses")
        .expect("something was redacted");
    let m = &req.messages;
    assert_eq!(m[0].content.as_deref(), Some("You are helpful."));
    let calls = m[1].tool_calls.as_ref().expect("calls kept");
    assert_eq!(calls[0].function.arguments, r#"{"city": "Paris"}"#);
    // The JSON stays valid: the escape before the address is kept, the
    // number becomes a string.
    assert_eq!(
        calls[1].function.arguments,
        "{\"note\": \"line\\n[EMAIL_1]\", \"card\": \"[CARD_1]\"}"
    );
    assert_eq!(m[2].content.as_deref(), Some("Found [EMAIL_1], ip [IP_1]"));
    assert_eq!(m[3].content.as_deref(), Some("Mail [EMAIL_1] please"));

    let mut answer = msg(
        Role::Assistant,
        Some("I wrote to [EMAIL_1] from [IP_1]."),
        &[r#"{"to": "[EMAIL_1]", "card": "[CARD_1]"}"#],
    );
    restore_message(&r, &mut answer);
    assert_eq!(
        answer.content.as_deref(),
        Some("I wrote to bob@example.com from 10.0.0.1.")
    );
    let args = &answer.tool_calls.as_ref().expect("calls kept")[0]
        .function
        .arguments;
    assert_eq!(
        args,
        r#"{"to": "bob@example.com", "card": "4111111111111111"}"#
    );

    // Nothing found: nothing to restore.
    let mut clean = chat(vec![msg(Role::User, Some("hello"), &[])]);
    assert!(protect_chat(&mut clean, PiiMode::Redact)
        .expect("redact never refuses")
        .is_none());
}

#[test]
fn arguments_that_are_not_json_are_redacted_as_text() {
    let mut req = chat(vec![msg(
        Role::Assistant,
        None,
        &[r#"{"to": "bob@example.com""#],
    )]);
    protect_chat(&mut req, PiiMode::Redact).expect("redact never refuses");
    let calls = req.messages[0].tool_calls.as_ref().expect("calls kept");
    assert_eq!(calls[0].function.arguments, r#"{"to": "[EMAIL_1]""#);
}

#[test]
fn protect_texts_names_the_item() {
    let mut texts = vec!["a cat".to_owned(), "call 415-555-0132".to_owned()];
    let err = protect_texts(&mut texts, "input", PiiMode::Block).expect_err("blocked");
    assert_eq!(err.details["field"], "input[1]");
    assert_eq!(err.details["category"], "phone");
    assert!(err.message.contains("a phone number"));
    assert!(protect_texts(&mut texts, "input", PiiMode::Off)
        .expect("off")
        .is_none());
    assert_eq!(texts[1], "call 415-555-0132");
    let r = protect_texts(&mut texts, "input", PiiMode::Redact)
        .expect("redact")
        .expect("redacted");
    assert_eq!(texts, ["a cat", "call [PHONE_1]"]);
    assert_eq!(r.restore(&texts[1]), "call 415-555-0132");
}

/// A deterministic generator (xorshift64*), no dependency needed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn text(&mut self, max: usize) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "0",
            "7",
            "1",
            "9",
            " ",
            ".",
            "-",
            "+",
            "(",
            ")",
            "[",
            "]",
            "_",
            ":",
            "/",
            "=",
            "@",
            "\"",
            "\\",
            "\n",
            "é",
            "中",
            "😀",
            "\u{200b}",
            "[EMAIL_1]",
            "[email_2]",
            "[CARD_",
            "4111",
            " 1111",
            "@example.com",
            "jane",
            "Bearer ",
            "sk-",
            "eyJ",
            "::",
            "192.168.",
            "DE89 3704 0044 0532 0130 00",
            "123-45-6789",
            "+1 415 555 0132",
            "Ab3dEf6hIj9kLm2nOp5qRs8tUv",
            "ffff",
        ];
        let n = self.below(max);
        (0..n).map(|_| PIECES[self.below(PIECES.len())]).collect()
    }
}

#[test]
fn random_unicode_never_panics_and_round_trips() {
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    for round in 0..3000 {
        let text = g.text(40);
        let findings = detect(&text);
        let mut last = 0;
        for f in &findings {
            assert!(f.start >= last && f.start < f.end, "{text:?}: {findings:?}");
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            let v = &text[f.start..f.end];
            assert!(
                !v.chars().any(|c| c == '"' || c == '\\' || c.is_control()),
                "{v:?} needs escaping in JSON"
            );
            last = f.end;
        }

        let mut r = Redactor::new();
        let red = r.redact(&text);
        assert_eq!(r.restore(&red), text, "round trip of {text:?}");
        assert_eq!(r.is_empty(), findings.is_empty());

        // Streamed in random pieces, the same as whole.
        let whole = r.restore(&red);
        let mut s = r.restorer();
        let mut out = String::new();
        let mut rest = red.as_str();
        while !rest.is_empty() {
            let mut cut = g.below(rest.len() + 1);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            out += &s.push(&rest[..cut]);
            rest = &rest[cut..];
        }
        out += &s.finish();
        assert_eq!(out, whole, "streamed {red:?}");

        // As tool call arguments: still JSON, and the strings come back.
        let args = serde_json::json!({ "q": text, "n": round }).to_string();
        let mut req = chat(vec![msg(Role::Assistant, Some(&text), &[&args])]);
        let blocked = protect_chat(&mut req.clone(), PiiMode::Block).is_err();
        assert_eq!(blocked, !findings.is_empty(), "{text:?}");
        let r = protect_chat(&mut req, PiiMode::Redact).expect("redact never refuses");
        let sent = &req.messages[0].tool_calls.as_ref().expect("calls")[0]
            .function
            .arguments;
        let sent: serde_json::Value = serde_json::from_str(sent).expect("still JSON");
        if let Some(r) = r {
            let back = r.restore(&sent.to_string());
            let back: serde_json::Value = serde_json::from_str(&back).expect("restored JSON");
            assert_eq!(back["q"], serde_json::json!(text));
        }

        let mut texts = vec![text.clone(), red];
        for mode in [PiiMode::Off, PiiMode::Redact, PiiMode::Block] {
            let _ = protect_texts(&mut texts, "input", mode);
        }
    }
}

/// About 200 KB of prose with PII at known places: every value is found,
/// numbered once, and comes back.
#[test]
fn large_mixed_text() {
    let mut text = String::new();
    let mut n = 0;
    while text.len() < 200_000 {
        text += &format!(
            "Paragraph {n}: the customer user{n}@example.com called from +44 20 7946 {:04} about \
             version 1.2.{n} of the app on 2026-12-06 at 12:30. Their host was 10.0.{}.{} and \
             they paid with 4111 1111 1111 1111 (not 4111 1111 1111 1112). Nothing else of \
             note; the quick brown fox jumps over the lazy dog.\n",
            n % 10_000,
            n / 256 % 256,
            n % 256,
        );
        n += 1;
    }
    let findings = detect(&text);
    let count = |c: Category| findings.iter().filter(|f| f.category == c).count();
    assert_eq!(count(Category::Email), n);
    assert_eq!(count(Category::Phone), n);
    assert_eq!(count(Category::IpAddress), n);
    assert_eq!(count(Category::Card), n);
    assert_eq!(findings.len(), 4 * n);

    let mut r = Redactor::new();
    let red = r.redact(&text);
    assert!(red.contains(&format!("[EMAIL_{n}]")) && !red.contains("@example.com"));
    assert_eq!(
        red.matches("[CARD_1]").count(),
        n,
        "one card, one placeholder"
    );
    assert_eq!(r.restore(&red), text);
}

/// Inputs that would make a careless scanner quadratic finish (run in
/// release, each takes milliseconds).
#[test]
fn pathological_inputs_finish() {
    for unit in [
        "1",
        "a",
        "@",
        "a@",
        "1.",
        "1 ",
        "1-",
        "[",
        "[E",
        "+1 ",
        "a:",
        "eyJaaaaaaaaaaa.",
        "Bearer ",
    ] {
        let text = unit.repeat(100_000 / unit.len());
        let mut r = Redactor::new();
        let red = r.redact(&text);
        assert_eq!(r.restore(&red), text);
    }
}
