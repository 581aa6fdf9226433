"""Interactive few-shot demo in the browser: draw an example of each class, draw a query, see it classified.

    pip install -r requirements-demo.txt
    python demo.py [--ckpt checkpoints/omniglot_5way_1shot_background_augmented/best.ckpt] [--port 7860] [--host 127.0.0.1]

then open http://127.0.0.1:7860/. The page has one canvas per class, as many as the checkpoint's n_way:
draw (or upload) one example of each class you want, at least 2, name them, draw a query and press
Classify. As in predict.py, the checkpoint's meta-parameters are fine-tuned on the examples and the query
gets a probability per class; the query is classified on its own (transductive false), so one drawing
is classified as well as among others. The canvases go through predict.py's image conversion. The
checkpoint is loaded once, at start; other settings (e.g. --update_step_test) are taken as predict.py takes them.
"""
import sys
from pathlib import Path

from src.data.drawn_task import drawn_task
from src.engine.loading import fine_tuning, load_for_inference
from src.maml import AdaptAndScore
from src.model_utils.errors import ArgumentParser, UserError, one_line, run_cli
from src.model_utils.log import log
from predict import class_probabilities

# Drawings are the user's own symbols: the default checkpoint never saw the alphabets it is tested on, and it is
# trained one query at a time, as the demo classifies.
DEFAULT_CKPT = Path(__file__).resolve().parent / "checkpoints" / "omniglot_5way_1shot_background_augmented" / "best.ckpt"
CANVAS = (315, 315)  # 3 x Omniglot's 105 x 105 drawings, so that BRUSH draws strokes as wide as theirs
BRUSH = 6  # radius in canvas pixels
PER_ROW = 5


class Classifier:
    """The trained network, loaded once, classifying a demo page's inputs."""

    def __init__(self, cfg, maml):
        self.cfg = cfg
        self.adapt = AdaptAndScore(maml, cfg.update_step_test)

    def __call__(self, names, images, query):
        """{class name: probability} of the query, the classes being the named drawings."""
        classes, x_spt, y_spt, x_qry = drawn_task(names, images, query, self.cfg.imgsz, self.cfg.n_way,
                                                   self.cfg.redraw)
        probs = class_probabilities(self.adapt, x_spt, y_spt, x_qry, len(classes))[0]
        return {name: float(p) for name, p in zip(classes, probs)}


def _drawing(value):
    """The image a canvas shows (its layers over its background), or None."""
    return value.get("composite") if isinstance(value, dict) else value


def build_app(classifier, title):
    import gradio as gr

    n_way = classifier.cfg.n_way

    def classify(*values):
        names, canvases, query = values[:n_way], values[n_way:2 * n_way], values[-1]
        try:
            return classifier(names, [_drawing(c) for c in canvases], _drawing(query))
        except UserError as err:
            raise gr.Error(one_line(err), print_exception=False) from None

    def canvas(label, show_label=True):
        return gr.Sketchpad(label=label, show_label=show_label, type="pil", image_mode="RGBA",
                            sources=("upload", "clipboard"), canvas_size=CANVAS, layers=False, transforms=(),
                            brush=gr.Brush(default_size=BRUSH, colors=["#000000"], color_mode="fixed"), height=260)

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # no web fonts: works offline
    with gr.Blocks(title="MAML few-shot demo", analytics_enabled=False) as app:
        gr.Markdown(f"### {title}\nDraw or upload one example of each class (at least 2, at most {n_way}), name "
                    "them, draw a query and press **Classify**. Black strokes on white, like a pen on paper. The first "
                    "Classify with a given number of classes takes longer: the network is compiled for it.")
        names, canvases = [], []
        for start in range(0, n_way, PER_ROW):
            with gr.Row():
                for i in range(start, min(start + PER_ROW, n_way)):
                    with gr.Column(min_width=180):
                        names.append(gr.Textbox(label=f"class {i + 1}", placeholder="name", max_lines=1))
                        canvases.append(canvas(f"example of class {i + 1}", show_label=False))
        with gr.Row():
            with gr.Column(min_width=180):
                query = canvas("query")
            with gr.Column(scale=2):
                button = gr.Button("Classify", variant="primary")
                result = gr.Label(label="prediction", num_top_classes=n_way)
        button.click(classify, inputs=[*names, *canvases, query], outputs=result, api_name="classify")
    return app, theme


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--ckpt", default=str(DEFAULT_CKPT),
                        help="checkpoint to classify with (default: the shipped 5-way 1-shot of images_background)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve the page on")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every network interface)")
    args, rest = parser.parse_known_args(argv)
    try:
        import gradio  # noqa: F401  (an optional extra: say how to install it rather than fail later)
    except ImportError:
        raise UserError("the demo needs Gradio, which is not installed: pip install -r requirements-demo.txt") from None
    cfg, maml, meta = load_for_inference(["--ckpt", args.ckpt, *rest], user_images=True)
    if cfg.transductive:
        raise UserError("--transductive true: the demo classifies one query, on its own: drop --transductive")
    log(f"classifying with {cfg.ckpt} (step {meta['step']}, {cfg.n_way}-way), fine-tuned in {fine_tuning(cfg)}",
        sys.stderr)
    app, theme = build_app(Classifier(cfg, maml), f"Few-shot classification with {Path(cfg.ckpt).parent.name}/"
                                                  f"{Path(cfg.ckpt).name} ({cfg.n_way}-way)")
    try:
        app.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port, theme=theme,
                                                      show_error=True, ssr_mode=False)
    except OSError:
        raise UserError(f"cannot serve on {args.host}:{args.port}: the port is taken or the address is not one of "
                        "this machine's: pass another --port or --host") from None


if __name__ == "__main__":
    run_cli(main)
