// The in-app confirm dialog (#confirm-dialog, #confirm-ok, #confirm-cancel) and the way to ask
// it: `ConfirmProvider` (once, in App) and `useConfirm()`. It stands in for window.confirm,
// which WKWebView (Tauri on macOS) answers with false without showing anything and which, as a
// native dialog, blocks the page under WebDriver. Made for destructive actions: focus starts on
// Cancel; Escape (or a click beside the dialog) cancels, Enter confirms.
import { createContext, type ComponentChildren } from 'preact';
import { useCallback, useContext, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';

interface Request {
  id: number;
  question: string;
  okLabel: string;
  resolve: (ok: boolean) => void;
}

interface ConfirmValue {
  show: (request: Request) => void;
  answer: (request: Request, ok: boolean) => void;
}

/** Asks `question`; resolves true once the user chooses `okLabel`, false on Cancel. */
export type Confirm = (question: string, okLabel: string) => Promise<boolean>;

const Context = createContext<ConfirmValue | null>(null);

let nextId = 1;

/** Shows one question at a time; a new one answers the one still open with false. */
export function ConfirmProvider({ children }: { children: ComponentChildren }) {
  const [current, setCurrent] = useState<Request | null>(null);
  const open = useRef<Request | null>(null);

  const answer = useCallback((request: Request, ok: boolean) => {
    if (open.current !== request) return; // already answered (or replaced)
    open.current = null;
    setCurrent(null);
    request.resolve(ok);
  }, []);

  const show = useCallback(
    (request: Request) => {
      if (open.current) answer(open.current, false);
      open.current = request;
      setCurrent(request);
    },
    [answer],
  );

  // Nobody is left to see the question: it is not confirmed.
  useEffect(
    () => () => {
      if (open.current) answer(open.current, false);
    },
    [answer],
  );

  const value = useMemo(() => ({ show, answer }), [show, answer]);
  return (
    <Context.Provider value={value}>
      {children}
      {current && (
        <ConfirmDialog
          key={current.id}
          question={current.question}
          okLabel={current.okLabel}
          onAnswer={(ok) => answer(current, ok)}
        />
      )}
    </Context.Provider>
  );
}

/**
 * The `confirm(question, okLabel)` of this component. A question still open when the
 * component goes away (e.g. the route changed) is answered with false and closed.
 */
export function useConfirm(): Confirm {
  const ctx = useContext(Context);
  if (!ctx) throw new Error('useConfirm outside ConfirmProvider');
  const mine = useRef<Request | null>(null);

  useEffect(
    () => () => {
      if (mine.current) ctx.answer(mine.current, false);
    },
    [ctx],
  );

  return useCallback(
    (question: string, okLabel: string) =>
      new Promise<boolean>((resolve) => {
        const request: Request = {
          id: nextId++,
          question,
          okLabel,
          resolve: (ok) => {
            if (mine.current === request) mine.current = null;
            resolve(ok);
          },
        };
        mine.current = request;
        ctx.show(request);
      }),
    [ctx],
  );
}

interface DialogProps {
  question: string;
  okLabel: string;
  onAnswer: (ok: boolean) => void;
}

export function ConfirmDialog({ question, okLabel, onAnswer }: DialogProps) {
  const cancelRef = useRef<HTMLButtonElement>(null);
  const okRef = useRef<HTMLButtonElement>(null);
  const latest = useRef(onAnswer);
  latest.current = onAnswer;

  // A layout effect: focus and the keys are the dialog's from the moment it is on screen.
  useLayoutEffect(() => {
    const before = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    cancelRef.current?.focus();
    // Captured on the document, so the page under the dialog never sees these keys.
    function onKey(e: KeyboardEvent) {
      if (e.key === 'Escape') {
        latest.current(false);
      } else if (e.key === 'Enter') {
        // A held Enter (e.g. the one that opened the dialog) does not confirm by itself.
        if (!e.repeat) latest.current(true);
      } else if (e.key === 'Tab') {
        // Focus stays on the two buttons while the dialog is open.
        const other = document.activeElement === cancelRef.current ? okRef : cancelRef;
        other.current?.focus();
      } else {
        return;
      }
      e.preventDefault();
      e.stopPropagation();
    }
    document.addEventListener('keydown', onKey, true);
    return () => {
      document.removeEventListener('keydown', onKey, true);
      if (before?.isConnected) before.focus();
    };
  }, []);

  return (
    <div
      id="confirm-dialog"
      class="modal-overlay"
      role="dialog"
      aria-modal="true"
      aria-labelledby="confirm-question"
      onClick={(e) => {
        if (e.target === e.currentTarget) onAnswer(false);
      }}
    >
      <div class="modal">
        <p id="confirm-question">{question}</p>
        <div class="buttons">
          <button type="button" id="confirm-cancel" ref={cancelRef} onClick={() => onAnswer(false)}>
            Cancel
          </button>
          <button type="button" id="confirm-ok" class="primary danger" ref={okRef} onClick={() => onAnswer(true)}>
            {okLabel}
          </button>
        </div>
      </div>
    </div>
  );
}
