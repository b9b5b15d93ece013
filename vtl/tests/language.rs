//! The Velocity language as API Gateway runs it (Velocity 1.7): references, directives,
//! expressions, whitespace gobbling, methods, and errors with positions.

use serde_json::{Value, json};
use wsgate_vtl::{Input, Limits, RenderError, Template};

fn render_with(src: &str, body: &str, context: &Value) -> Result<String, RenderError> {
    let empty = json!({});
    let input = Input {
        body,
        context,
        stage_variables: &empty,
        params: &empty,
    };
    Template::parse(src)
        .unwrap_or_else(|e| panic!("{src:?}: {e}"))
        .render(&input, &Limits::default())
}

fn render(src: &str) -> String {
    render_with(src, "", &json!({})).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

#[test]
fn references_and_quiet_references() {
    assert_eq!(render("#set($a = 'x')$a ${a} $!a $!{a}"), "x x x x");
    assert_eq!(
        render("$b ${b} $!b $!{b} $b.c $b.c()"),
        "$b ${b}   $b.c $b.c()"
    );
    assert_eq!(
        render("#set($m = {'k': {'n': 1}})$m.k.n $m['k']['n'] $m.get('k').n"),
        "1 1 1"
    );
    assert_eq!(
        render("#set($l = [1, 'a', true])$l[0] $l[1] $l[-1] $l.get(2)"),
        "1 a true true"
    );
    assert_eq!(render("$ 5 $$ $1 #x #"), "$ 5 $$ $1 #x #");
    assert_eq!(render("${a"), "${a");
    assert_eq!(render("#set($a = 'v')$a._b $a.1"), "v._b v.1");
    // Without `(`, #set and #foreach are text.
    assert_eq!(render("#set x #foreach"), "#set x #foreach");
    assert_eq!(render("#set($a = 'v')${a}b $a.b"), "vb $a.b");
}

#[test]
fn escaping_comments_and_raw_blocks() {
    assert_eq!(render("#set($a = 1)\\$a \\$b \\\\$a"), "$a \\$b \\1");
    assert_eq!(render("\\#if(true)"), "#if(true)");
    assert_eq!(render("a## comment\nb"), "ab");
    assert_eq!(render("a#* block\n comment *#b"), "ab");
    assert_eq!(render("#[[ $a #if( ]]#"), " $a #if( ");
    assert_eq!(render("path\\to\\file \\n"), "path\\to\\file \\n");
}

#[test]
fn directive_lines_emit_nothing() {
    let src = "#set($x = 1)\n#if($x == 1)\nyes\n#else\nno\n#end\nend";
    assert_eq!(render(src), "yes\nend");
    // Velocity 1.7: #set also takes its indentation when the blanks begin a text token (after a
    // directive line, a comment, or at the start); after other text they stay, as in 1.7.
    assert_eq!(
        render("#if(true)\n    #set($x = 1)\n\t#set($y = 2)\n$x$y#end"),
        "12"
    );
    assert_eq!(render("    #set($x = 1)\nb"), "b");
    assert_eq!(render("a\n## note\n    #set($x = 1)\nb"), "a\nb");
    assert_eq!(render("a\n    #set($x = 1)\nb"), "a\n    b");
    // Other directives keep their indentation.
    assert_eq!(render("  #if(true)\n  x\n  #end\n"), "    x\n  ");
    assert_eq!(render("#if(true)  \r\nx#end  \n"), "x");
    assert_eq!(render("#{if}(true)a#{else}b#{end}"), "a");
    // Mid-line, the text before #set is kept (only a line's indentation is taken).
    assert_eq!(render("x #set($a = 1) y"), "x  y");
}

#[test]
fn if_elseif_else() {
    let t = "#foreach($v in [1, 2, 3, 4])#if($v == 1)one#elseif($v == 2)two#elseif($v < 4)three#{else}many#end,#end";
    assert_eq!(render(t), "one,two,three,many,");
    // Truthiness: null and false are false, the empty string is true (Velocity 1.7).
    assert_eq!(
        render("#if($nothing)a#else b#end #if('')c#end #if(false)d#end #if(0)e#end"),
        " b c  e"
    );
    assert_eq!(render("#if(!$nothing && (1 < 2 || false))y#end"), "y");
    assert_eq!(
        render("#if(1 lt 2 and not false and 2 ge 2 and 'a' eq 'a' and 1 ne 2 or false)y#end"),
        "y"
    );
}

#[test]
fn foreach_and_loop_variables() {
    let t = "#foreach($i in [1..3])$foreach.index/$foreach.count/$velocityCount#if($foreach.hasNext),#end#end";
    assert_eq!(render(t), "0/1/1,1/2/2,2/3/3");
    assert_eq!(render("#foreach($i in [3..1])$i#end"), "321");
    assert_eq!(
        render("#foreach($i in [1..5])#if($i == 3)#break#end$i#end"),
        "12"
    );
    assert_eq!(
        render("a#foreach($i in [1..5])$i#if($i == 2)#stop#end#end b"),
        "a12"
    );
    assert_eq!(render("#foreach($k in {'a': 1, 'b': 2})$k#end"), "12");
    assert_eq!(render("#foreach($i in $missing)x#end."), ".");
    // The loop variable is restored afterwards.
    assert_eq!(
        render("#set($i = 'out')#foreach($i in [1])$i#end$i"),
        "1out"
    );
    assert_eq!(
        render(
            "#foreach($a in [1, 2])#foreach($b in ['x', 'y'])$a$b$foreach.index #end$foreach.index|#end"
        ),
        "1x0 1y1 0|2x0 2y1 1|"
    );
    assert_eq!(
        render("#set($m = {'k': 'v'})#foreach($e in $m.entrySet())$e.key=$e.value#end"),
        "k=v"
    );
}

#[test]
fn set_forms() {
    assert_eq!(
        render("#set($m = {})#set($m.a = 1)#set($m['b'] = 2)$m"),
        "{a=1, b=2}"
    );
    assert_eq!(render("#set($l = [1, 2])#set($l[1] = 'x')$l"), "[1, x]");
    // A null right side leaves the variable as it was (Velocity 1.7).
    assert_eq!(render("#set($a = 1)#set($a = $nothing)$a"), "1");
    // Lists and maps are shared references, as Java objects.
    assert_eq!(
        render("#set($a = [])#set($b = $a)#set($_ = $b.add(1))$a"),
        "[1]"
    );
}

#[test]
fn literals_and_operators() {
    assert_eq!(
        render("#set($a = 7 / 2)#set($b = 7 % 3)#set($c = 1.5 * 2)#set($d = -3 + 1)$a $b $c $d"),
        "3 1 3.0 -2"
    );
    assert_eq!(render("#set($a = 'a' + 1 + 2)$a"), "a12");
    assert_eq!(render("#set($a = 1 + 2 * 3 - (4 - 1))$a"), "4");
    assert_eq!(
        render("#set($a = 1e3)#set($b = 2.5E-1)$a $b"),
        "1000.0 0.25"
    );
    assert_eq!(render("#set($a = 5 / 0)$a"), "$a");
    assert_eq!(
        render("#set($x = 'w')#set($a = \"hi $x ${x}s\")$a"),
        "hi w ws"
    );
    assert_eq!(render("#set($a = 'no $x')$a"), "no $x");
    assert_eq!(render("#set($a = \"say \"\"hi\"\"\")$a"), "say \"hi\"");
    assert_eq!(render("#set($a = 'it''s')$a"), "it's");
    assert_eq!(
        render("#set($l = [1, \"a\", [true, null], {'k': 2.5}])$l"),
        "[1, a, [true, null], {k=2.5}]"
    );
    assert_eq!(
        render("#if(1 == 1.0 && '1' == 1 && [1] == [1] && {'a':1} == {'a':1})y#end"),
        "y"
    );
    assert_eq!(
        render("#set($big = 9223372036854775807 + 1)$big"),
        "9.223372036854776E18"
    );
}

#[test]
fn string_methods() {
    let s = "#set($s = ' Hello, World ')";
    let cases = [
        ("$s.length()", "14"),
        ("$s.trim()", "Hello, World"),
        ("$s.trim().substring(7)", "World"),
        ("$s.trim().substring(0, 5)", "Hello"),
        ("$s.indexOf('o')", "5"),
        ("$s.lastIndexOf('o')", "9"),
        ("$s.indexOf('o', 6)", "9"),
        ("$s.contains('World')", "true"),
        ("$s.trim().startsWith('Hell')", "true"),
        ("$s.trim().endsWith('ld')", "true"),
        ("$s.toUpperCase()", " HELLO, WORLD "),
        ("$s.toLowerCase()", " hello, world "),
        ("$s.replace('o', '0')", " Hell0, W0rld "),
        ("$s.replaceAll('[aeiou]', '*')", " H*ll*, W*rld "),
        ("$s.replaceAll('(\\w+), (\\w+)', '$2 $1')", " World Hello "),
        ("$s.replaceFirst('l+', 'L')", " HeLo, World "),
        ("$s.trim().matches('H.*d')", "true"),
        ("$s.matches('World')", "false"),
        ("$s.trim().split(', ')", "[Hello, World]"),
        ("$s.charAt(1)", "H"),
        ("$s.concat('!')", " Hello, World !"),
        ("$s.equals(' Hello, World ')", "true"),
        ("$s.trim().equalsIgnoreCase('hello, world')", "true"),
        ("$s.isEmpty()", "false"),
        ("$s.empty", "false"),
        ("$s.toString()", " Hello, World "),
    ];
    for (expr, want) in cases {
        assert_eq!(render(&format!("{s}{expr}")), want, "{expr}");
    }
    assert_eq!(
        render("#set($p = 'a,b,,c,,')$p.split(',') $p.split(',').size() $p.split(',', -1).size()"),
        "[a, b, , c] 4 6"
    );
    assert_eq!(
        render("#set($u = 'héllo')$u.length() $u.substring(1, 3) $u.toUpperCase()"),
        "5 él HÉLLO"
    );
}

#[test]
fn list_and_map_methods() {
    let t = "#set($l = [])#set($_ = $l.add('a'))#set($_ = $l.add('b'))$l.size() $l.get(1) $l.contains('a') $l.indexOf('b') $l.isEmpty() $l";
    assert_eq!(render(t), "2 b true 1 false [a, b]");
    let t = "#set($m = {'a': 1})#set($_ = $m.put('b', 2))$m.size() $m.containsKey('b') $m.keySet() $m.values() $m.get('a') $m.remove('a') $m";
    assert_eq!(render(t), "2 true [a, b] [1, 2] 1 1 {b=2}");
    // On a map a property is a key (Velocity looks up `get("empty")`), not `isEmpty()`.
    assert_eq!(
        render("#set($m = {})$m.isEmpty() $m.empty"),
        "true $m.empty"
    );
    let t = "#set($m = {'x': 1, 'y': 2})#foreach($e in $m.entrySet())$e.getKey()=$e.getValue()#if($foreach.hasNext)&#end#end";
    assert_eq!(render(t), "x=1&y=2");
    assert_eq!(
        render("#set($n = 42)#set($f = 2.5)$n.toString() $n.intValue() $f.intValue()"),
        "42 42 2"
    );
}

#[test]
fn method_errors_fail_the_render() {
    let err = render_with("#set($s = 'abc')$s.substring(5)", "", &json!({})).unwrap_err();
    assert!(matches!(err, RenderError::Invalid(_)), "{err}");
    let err = render_with("$util.parseJson('{bad')", "", &json!({})).unwrap_err();
    assert!(err.to_string().contains("parseJson"), "{err}");
    let err = render_with("#set($l = [])#set($_ = $l.add($l))", "", &json!({})).unwrap_err();
    assert!(err.to_string().contains("itself"), "{err}");
}

#[test]
fn parse_errors_name_line_and_column() {
    let e = Template::parse("a\nb #if($x\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 1), "{e}");
    let e = Template::parse("x\n  #foreach($a in $b)").unwrap_err();
    assert_eq!(e.to_string(), "line 2, column 3: #foreach without #end");
    let e = Template::parse("#end").unwrap_err();
    assert!(e.to_string().contains("#end without"), "{e}");
    let e = Template::parse("#macro(foo)x#end").unwrap_err();
    assert!(e.to_string().contains("#macro is not supported"), "{e}");
    let e = Template::parse("#define($x)y#end").unwrap_err();
    assert!(e.to_string().contains("#define is not supported"), "{e}");
    assert!(Template::parse("#set($a = )").is_err());
    assert!(Template::parse("#set(a = 1)").is_err());
    assert!(Template::parse("#* open").is_err());
    assert!(Template::parse("#if(true)#else#else#end").is_err());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let parens = format!("#set($a = {}1{})", "(".repeat(100_000), ")".repeat(100_000));
    assert!(
        Template::parse(&parens)
            .unwrap_err()
            .message
            .contains("nesting")
    );
    let ifs = format!("{}x{}", "#if(true)".repeat(100_000), "#end".repeat(100_000));
    assert!(
        Template::parse(&ifs)
            .unwrap_err()
            .message
            .contains("nesting")
    );
    let nots = format!("#if({}true)x#end", "!".repeat(100_000));
    assert!(Template::parse(&nots).is_err());
    let lists = format!("#set($a = {}{})", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Template::parse(&lists).is_err());
    let strings = format!(
        "#set($a = {}{})",
        "\"$a.b(".repeat(10_000),
        ")\"".repeat(10_000)
    );
    assert!(Template::parse(&strings).is_err());
    // Fifty levels are fine.
    let ok = format!("{}x{}", "#if(true)".repeat(50), "#end".repeat(50));
    assert_eq!(render(&ok), "x");
}
