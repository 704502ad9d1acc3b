"""What the course imports besides letta-client: ``print_message`` (its notebook helper)."""


def print_message(message):
    """Print one Letta message (or stream chunk) the way the course's notebooks do."""
    kind = getattr(message, "message_type", None)
    if kind == "reasoning_message":
        print("🧠 Reasoning: " + str(message.reasoning))
    elif kind == "assistant_message":
        print("🤖 Agent: " + str(message.content))
    elif kind == "tool_call_message":
        print("🔧 Tool Call: " + message.tool_call.name + "\n" + str(message.tool_call.arguments))
    elif kind == "tool_return_message":
        print("🔧 Tool Return: " + str(message.tool_return))
    elif kind == "user_message":
        print("👤 User Message: " + str(message.content))
    elif kind == "usage_statistics":
        print("📊 Usage: " + str(message.total_tokens) + " tokens")
    elif kind == "stop_reason":
        print("🛑 Stop reason: " + str(message.stop_reason))
