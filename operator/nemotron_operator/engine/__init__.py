"""What runs inside the vLLM pod (rendered args, chat template, tool-call and reasoning parser
plugins) and the engine emulator that stands in for vLLM where there is no GPU."""
