package keepalived

// Node is one keyword line of a configuration with its block, if any: the
// syntax keepalived's parser sees before it knows what a keyword means.
type Node struct {
	Pos Pos
	// Words are the line's words (keepalived's alloc_strvec: quotes
	// removed, no escapes); Words[0] is the keyword.
	Words []string
	// Text is the logical line (comments removed, parameters substituted),
	// for keywords that re-split it with quotes and escapes (misc_path).
	Text string
	// Block holds the lines between the '{' that follows this line and
	// its '}'; HasBlock tells an empty block from none.
	Block    []*Node
	HasBlock bool
}

// Keyword returns Words[0].
func (n *Node) Keyword() string { return n.Words[0] }

// Arg returns the i-th argument (Words[i]), or "" and false when missing.
func (n *Node) Arg(i int) (string, bool) {
	if i < len(n.Words) {
		return n.Words[i], true
	}
	return "", false
}

// parseTree reads a configuration into its top-level nodes. Problems are
// added to ds; the tree is built as far as possible.
func parseTree(path string, o Options, ds *diags) []*Node {
	r := newReader(path, o, ds)
	var root []*Node
	type frame struct {
		owner *Node
		nodes *[]*Node
	}
	stack := []frame{{nodes: &root}}
	for {
		l, ok := r.next()
		if !ok {
			break
		}
		top := &stack[len(stack)-1]
		switch l.text {
		case "{":
			list := *top.nodes
			if len(list) == 0 || list[len(list)-1].HasBlock {
				ds.invalid(l.pos, "unexpected '{'")
				// Skip the block: read into a throw-away owner.
				stack = append(stack, frame{owner: &Node{Pos: l.pos}, nodes: new([]*Node)})
				continue
			}
			if len(stack) > MaxDepth {
				ds.invalid(l.pos, "blocks nested deeper than %d", MaxDepth)
			}
			owner := list[len(list)-1]
			owner.HasBlock = true
			stack = append(stack, frame{owner: owner, nodes: &owner.Block})
		case "}":
			if len(stack) == 1 {
				ds.invalid(l.pos, "extra '}' found")
				continue
			}
			stack = stack[:len(stack)-1]
		default:
			w, ok := words(l.text)
			if !ok {
				ds.invalid(l.pos, "unmatched quote: '%s'", l.text)
			}
			if len(w) == 0 {
				continue
			}
			*top.nodes = append(*top.nodes, &Node{Pos: l.pos, Words: w, Text: l.text})
		}
	}
	for i := len(stack) - 1; i > 0; i-- {
		ds.invalid(stack[i].owner.Pos, "'%s' block not closed: missing '}'", firstWord(stack[i].owner))
	}
	return root
}

func firstWord(n *Node) string {
	if len(n.Words) > 0 {
		return n.Words[0]
	}
	return "{"
}
