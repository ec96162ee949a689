"""``python -m compile info``: parameters, MACs, input size and joints of a variant."""

from __future__ import annotations

from . import add_model_args, fail, make_parser


def main(argv: list[str]) -> int:
    parser = make_parser("info", "Print parameters, true MACs, ptflops-style MACs and I/O shapes.")
    add_model_args(parser)
    args = parser.parse_args(argv)
    from compile.model.info import model_stats
    from compile.model.zoo import get_dataset, get_model, parse_input_size

    try:
        spec, ds = get_model(args.model), get_dataset(args.dataset)
        size = parse_input_size(args.input_size, spec.input_size)
    except ValueError as err:
        return fail(str(err))
    st = model_stats(spec, ds, size)
    rows = [
        ("model", f"LitePose-{spec.name.upper()} ({spec.arch_file})"),
        ("dataset", f"{ds.name} ({ds.num_joints} joints)"),
        ("input", f"1x3x{size[0]}x{size[1]} (nominal {spec.input_size})"),
        ("params", f"{st.params:,}"),
        ("true MACs", f"{st.true_macs / 1e9:.3f} G (conv + deconv, deconv per input pixel)"),
        ("ptflops MACs", f"{st.ptflops_macs / 1e9:.3f} G (the paper's convention; "
                         f"README quotes {spec.paper_gmacs} G at {spec.input_size})"),
        ("compiled MACs", f"{st.compiled_macs / 1e9:.3f} G (the graph TVM compiles: exact stride-1 "
                          f"deconvs; TVM's own deconv lowering: {st.zero_dilated_macs / 1e9:.3f} G)"),
        ("outputs", ", ".join("x".join(map(str, s)) for s in st.output_shapes)),
        ("keypoints", ", ".join(ds.keypoints)),
    ]
    for key, value in rows:
        print(f"{key:13s} {value}")
    return 0
