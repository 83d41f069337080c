"""One plain, typed Python function per `dfake` command: what the CLI, the tests and notebooks call.

    prepare      api.prepare.prepare_ffpp / prepare_testset   -> PrepareResult
    train        api.train.run_train                          -> TrainResult
    eval         api.evaluate.run_eval                        -> EvalOutput
    detect       api.detect.run_detect                        -> DetectResult
    reconstruct  api.reconstruct.run_reconstruct              -> ReconstructResult
    bench        api.bench.run_bench                          -> BenchResult
    info         api.info.collect_info                        -> Info

Each function takes a `Workspace` and plain values, validates its options before any work (one-line
`InputError` naming the option), calls the engines (data/, models/, train/, evaluation/, bench/) and
returns a dataclass whose `to_dict()` is what `--json` prints. Nothing here prints or imports the CLI;
progress reaches the caller through callbacks or the engines' stderr progress bars. The modules import
their heavy dependencies inside the functions, so importing this package stays cheap.
"""
