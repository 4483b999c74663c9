#!/usr/bin/env python3
"""Drives `agentcompress serve` with the official `openai` package, unchanged.

usage: openai_client.py BASE_URL API_KEY

Checks a greedy chat completion, the same request streamed (the deltas join
to the same text), a completion, the model list, and that a bad request
raises the library's BadRequestError and a wrong key its AuthenticationError.
Exits 0 when all pass; 77 (skip) when the package is not installed.
"""
import sys

try:
    import openai
except ImportError:
    print("skip: the openai package is not installed (pip install openai)")
    sys.exit(77)


def main():
    base_url, key = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)

    models = [m.id for m in client.models.list().data]
    assert models, "no models listed"

    messages = [{"role": "user", "content": "Name a primary color."}]
    chat = client.chat.completions.create(model=models[0], messages=messages, temperature=0, max_tokens=12)
    text = chat.choices[0].message.content
    assert chat.object == "chat.completion", chat.object
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].finish_reason in ("stop", "length")
    assert text, "empty completion"
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

    stream = client.chat.completions.create(model=models[0], messages=messages, temperature=0, max_tokens=12,
                                            stream=True, stream_options={"include_usage": True})
    parts, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert "".join(parts) == text, ("".join(parts), text)
    assert finish == chat.choices[0].finish_reason
    assert usage and usage.completion_tokens == chat.usage.completion_tokens

    comp = client.completions.create(model=models[0], prompt="The sky is", temperature=0, max_tokens=6)
    assert comp.object == "text_completion" and comp.choices[0].text

    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("unknown model accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400

    try:
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
        raise AssertionError("wrong key accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401

    print(f"openai {openai.__version__}: chat, stream, completion, models, errors ok ({text!r})")


if __name__ == "__main__":
    main()
