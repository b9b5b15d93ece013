//! The sandbox bounds: output bytes (checked while writing), iterations per #foreach, the step
//! budget, the time budget, and hostile templates (growing strings, regex blow-ups, cycles,
//! deep values) that must end in an error, never a hang, a crash or unbounded memory.

use std::time::{Duration, Instant};

use serde_json::json;
use wsgate_vtl::{Input, Limits, RenderError, Template};

/// Limits whose clock never trips on a loaded machine, for tests of the other bounds.
fn lim() -> Limits {
    Limits {
        max_duration: Duration::from_secs(30),
        ..Limits::default()
    }
}

fn run(src: &str, body: &str, limits: &Limits) -> Result<String, RenderError> {
    let empty = json!({});
    let input = Input {
        body,
        context: &empty,
        stage_variables: &empty,
        params: &empty,
    };
    Template::parse(src)
        .unwrap_or_else(|e| panic!("{e}"))
        .render(&input, limits)
}

#[test]
fn defaults_are_api_gateways() {
    let l = Limits::default();
    assert_eq!(l.max_output_bytes, 300 * 1024);
    assert_eq!(l.max_loop_iterations, 1000);
    assert_eq!(l.max_duration, Duration::from_millis(100));
    assert!(l.max_steps >= 100_000);
}

#[test]
fn output_is_bounded_while_it_grows() {
    let limits = Limits {
        max_output_bytes: 100,
        ..lim()
    };
    assert_eq!(run(&"x".repeat(100), "", &limits).unwrap().len(), 100);
    assert_eq!(
        run(&"x".repeat(101), "", &limits),
        Err(RenderError::OutputTooLarge { limit: 100 })
    );
    // A loop that would write far more stops at the bound, long before finishing.
    let started = Instant::now();
    let big = Limits {
        max_loop_iterations: usize::MAX,
        max_steps: u64::MAX,
        max_duration: Duration::from_secs(60),
        ..limits.clone()
    };
    let r = run("#foreach($i in [1..100000000])xxxxxxxxxx#end", "", &big);
    assert_eq!(r, Err(RenderError::OutputTooLarge { limit: 100 }));
    assert!(started.elapsed() < Duration::from_secs(5));
    // The body echoed back counts too.
    let body = "y".repeat(200);
    assert_eq!(
        run("$input.body", &body, &limits),
        Err(RenderError::OutputTooLarge { limit: 100 })
    );
}

#[test]
fn each_foreach_is_bounded() {
    let limits = Limits {
        max_loop_iterations: 10,
        ..lim()
    };
    assert_eq!(
        run("#foreach($i in [1..10])$i#end", "", &limits).unwrap(),
        "12345678910"
    );
    assert_eq!(
        run("#foreach($i in [1..11])$i#end", "", &limits),
        Err(RenderError::TooManyIterations { limit: 10 })
    );
    // The bound is per loop: nested loops of 10 x 10 are fine.
    let nested = "#foreach($i in [1..10])#foreach($j in [1..10])x#end#end";
    assert_eq!(run(nested, "", &limits).unwrap().len(), 100);
    // A list from the body is bounded the same way.
    let body = format!("[{}]", ["1"; 11].join(","));
    assert_eq!(
        run("#foreach($i in $input.path('$'))$i#end", &body, &limits),
        Err(RenderError::TooManyIterations { limit: 10 })
    );
}

#[test]
fn the_step_budget_ends_nested_loops() {
    let limits = Limits {
        max_steps: 50_000,
        ..lim()
    };
    let src = "#foreach($a in [1..1000])#foreach($b in [1..1000])#set($x = $a * $b)#end#end";
    assert_eq!(run(src, "", &limits), Err(RenderError::StepBudget));
    // A huge range is refused before it is built.
    assert_eq!(
        run("#set($r = [1..9000000000000000000])", "", &limits),
        Err(RenderError::StepBudget)
    );
}

#[test]
fn the_time_budget_ends_a_long_render() {
    let limits = Limits {
        max_steps: u64::MAX,
        max_duration: Duration::from_millis(50),
        ..Limits::default()
    };
    let src = "#foreach($a in [1..1000])#foreach($b in [1..1000])#foreach($c in [1..1000])#set($x = $c)#end#end#end";
    let started = Instant::now();
    assert_eq!(run(src, "", &limits), Err(RenderError::Timeout));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn growing_strings_are_bounded() {
    // Doubling a string in a loop would need 2^1000 bytes.
    let src = "#set($s = 'ab')#foreach($i in [1..1000])#set($s = \"$s$s\")#end";
    assert!(matches!(
        run(src, "", &lim()),
        Err(RenderError::OutputTooLarge { .. })
    ));
    let src = "#set($s = 'ab')#foreach($i in [1..1000])#set($s = $s + $s)#end";
    assert!(matches!(
        run(src, "", &lim()),
        Err(RenderError::OutputTooLarge { .. })
    ));
    let src = "#set($s = 'ab')#foreach($i in [1..1000])#set($s = $s.replace('a', $s))#end";
    assert!(matches!(
        run(src, "", &lim()),
        Err(RenderError::OutputTooLarge { .. })
    ));
    let src = "#set($s = 'ab')#foreach($i in [1..1000])#set($s = $s.replaceAll('', $s))#end";
    assert!(matches!(
        run(src, "", &lim()),
        Err(RenderError::OutputTooLarge { .. })
    ));
}

#[test]
fn hostile_values_end_in_errors() {
    let l = lim();
    // A list compared with itself while it changes.
    assert_eq!(
        run("#set($l = [[1], 2])#set($r = $l.remove($l))$r $l", "", &l).unwrap(),
        "false [[1], 2]"
    );
    assert_eq!(run("#set($l = [1])#set($_ = $l.add([$l.size()]))$l.contains($l) $l.indexOf($l) $l.equals($l)", "", &l).unwrap(), "false -1 true");
    // Cycles are refused.
    assert!(run("#set($m = {})#set($_ = $m.put('self', $m))", "", &l).is_err());
    assert!(run("#set($a = [])#set($b = [$a])#set($_ = $a.add($b))", "", &l).is_err());
    // A chain built one level per turn is deep but drops and renders without overflowing.
    let src = "#set($root = {})#set($cur = $root)#foreach($i in [1..1000])#set($n = {})#set($_ = $cur.put('n', $n))#set($cur = $n)#end$root";
    assert!(
        matches!(run(src, "", &l), Err(RenderError::Invalid(m)) if m.contains("nested deeper"))
    );
    let quiet = "#set($root = {})#set($cur = $root)#foreach($i in [1..1000])#set($n = {})#set($_ = $cur.put('n', $n))#set($cur = $n)#end done";
    assert_eq!(run(quiet, "", &l).unwrap(), " done");
    // Regular expressions run in linear time; Java-only syntax is an error.
    let evil = format!("#set($s = '{}!')$s.matches('(a+)+b')", "a".repeat(5000));
    assert_eq!(run(&evil, "", &l).unwrap(), "false");
    assert!(run("#set($s = 'a')$s.matches('(?<=a)b')", "", &l).is_err());
    assert!(run("#set($s = 'a')$s.replaceAll('(a)\\1', 'x')", "", &l).is_err());
    // Bodies nested deeper than JSON's bound are an error, not a crash.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(run("$input.json('$')", &deep, &l).is_err());
    assert!(run("$util.parseJson($input.body)", &deep, &l).is_err());
}
