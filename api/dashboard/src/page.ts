// What every part of the dashboard shares: its elements, the signed-in calls to the
// control plane, and how it reads their refusals.

export const TOKEN_KEY = "peaceland.token";

export const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

/** A call to the control plane as the signed-in person. */
export async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = new Headers(init.headers);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  if (init.body) headers.set("Content-Type", "application/json");
  return fetch(path, { ...init, headers });
}

/** The reason an answer gives for a refusal (its problem's detail). */
export async function problem(answer: Response): Promise<string> {
  try {
    const body = await answer.json();
    return body.detail ?? `${answer.status}`;
  } catch {
    return `${answer.status} ${answer.statusText}`;
  }
}

/** Back to the sign-in form, saying why (a logout elsewhere, an expired token). */
export function signedOut(reason: string): never {
  sessionStorage.removeItem(TOKEN_KEY);
  location.replace(`/dashboard/?signed-out=${encodeURIComponent(reason)}`);
  throw new Error(reason);
}
